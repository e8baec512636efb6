//! Giving the power back, against a real agent: net-snmp's snmpd playing an APC card
//! (`tests/fixtures/apc_card.py` behind its `pass_persist`: outlet groups with their
//! state, pending command and control), so that trapgate's SETs are checked by a real
//! agent, with a write community limited to the gateway's address (SNMPv1) and a v3 user
//! with a write view at authPriv. A shed tier's outlet group is cycled; the tier still
//! running is untouched; a card that refuses is an alert, and Wake-on-LAN takes over.
//! Skips, saying so, where snmpd or python3 is missing (`bash .ci/run` installs snmpd).

mod common;

use std::net::UdpSocket;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use trapgate::wire::oid::oid;
use trapgate::wire::{Message, Value, VarBind, encode};

const CARD: &str = "127.0.8.1";

fn have_python() -> bool {
    let ok = std::process::Command::new("python3")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        trapgate::testing::skip(
            "python3 is not installed: the card's pass_persist script needs it",
        );
    }
    ok
}

/// snmpd as the APC card on 127.0.8.1:`port`, its SETs logged to `dir/sets.log`; `extra`
/// adds access lines.
fn apc_card(dir: &Path, port: u16, extra: &str) -> Option<std::process::Child> {
    apc_card_set(dir, port, extra, "")
}

/// `apc_card` with the card's settings changed by `settings` (`shutoff=600 …`, as
/// `tests/fixtures/apc_card.py` takes them).
fn apc_card_set(dir: &Path, port: u16, extra: &str, settings: &str) -> Option<std::process::Child> {
    fixture_card(
        dir,
        (CARD, port),
        &format!("rocommunity public 127.0.0.0/8\n{extra}"),
        (".1.3.6.1.4.1.318", "apc_card.py"),
        settings,
    )
}

/// snmpd on `at` with `access` lines, playing the fixture `script` under `subtree`
/// (`tests/fixtures/SCRIPT LOG ARGS`), its SETs logged to `dir/sets.log`.
fn fixture_card(
    dir: &Path,
    at: (&str, u16),
    access: &str,
    (subtree, script): (&str, &str),
    args: &str,
) -> Option<std::process::Child> {
    if !have_python() {
        return None;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(script);
    let log = dir.join("sets.log");
    let _ = std::fs::remove_file(&log);
    snmpd_card(
        dir,
        &format!("udp:{}:{}", at.0, at.1),
        &format!(
            "{access}pass_persist {subtree} /usr/bin/env python3 {} {} {args}\n",
            script.display(),
            log.display()
        ),
    )
}

/// The gateway on the site file `file`, in this process: (it, what it prints, where its
/// traps go), settled half a second (its first polls out).
fn run_site(
    file: &Path,
) -> (
    InProcess,
    std::sync::mpsc::Receiver<String>,
    std::net::SocketAddr,
) {
    let mut gw = InProcess::start(&std::fs::read_to_string(file).expect("the site"), None);
    let (out, traps) = (gw.take_out(), gw.traps);
    std::thread::sleep(Duration::from_millis(500));
    (gw, out, traps)
}

/// A site of the card's UPS (APC, polled every second) feeding nvr-a (tier 2, on outlet
/// group 2, 2 s to shut down) and nvr-b (tier 1, on group 1), `ups_extra` added to the
/// UPS and `extra` to the end.
fn site(port: u16, ups_extra: &str, nvr_a_extra: &str, extra: &str) -> String {
    format!(
        r#"[gateway]
listen = ["127.0.0.1:0"]
agent = "127.0.0.1:0"

[policy]
grace = {{ 1 = "1h", 2 = "1s" }}
shutdown_below_charge = 10
shutdown_below_runtime = "1m"
confirm_by_poll = false
ack_timeout = "30s"
{extra}
[[ups]]
name = "ups-card"
address = "{CARD}"
port = {port}
vendor = "apc"
poll_interval = "1s"
outlet_off_delay = "10m"
{ups_extra}

[[recorder]]
name = "nvr-a"
address = "127.0.8.10"
ups = "ups-card"
tier = 2
shutdown_time = "2s"
outlet = {{ ups = "ups-card", group = 2 }}
{nvr_a_extra}

[[recorder]]
name = "nvr-b"
address = "127.0.8.11"
ups = "ups-card"
tier = 1
shutdown_time = "2s"
outlet = {{ ups = "ups-card", group = 1 }}
"#
    )
}

/// APC's v1 trap `specific` from the card's address.
fn apc_trap(specific: i64) -> Vec<u8> {
    trapgate::testing::v1_trap(b"public", "1.3.6.1.4.1.318", [127, 0, 8, 1], specific, &[])
}

/// APC's v1 outlet group trap `specific` (298 on, 299 off, 732 command) for `group`,
/// with `community`, as the card sends it: upsOutletGroupControlIndex, mtrapargsString.
fn apc_group_trap(community: &[u8], specific: i64, group: i64) -> Vec<u8> {
    let index = oid(&format!("1.3.6.1.4.1.318.1.1.1.12.3.2.1.1.{group}"));
    let text = oid("1.3.6.1.4.1.318.2.3.3.0");
    let vbs = [
        VarBind {
            name: index.as_oid(),
            value: Value::Integer(group),
        },
        VarBind {
            name: text.as_oid(),
            value: Value::OctetString(b"UPS: Outlet Group turned off."),
        },
    ];
    trapgate::testing::v1_trap(community, "1.3.6.1.4.1.318", [127, 0, 8, 1], specific, &vbs)
}

/// The card played by snmpd (read community `public`, write community `private` from
/// the gateway's address only, as the README says to give it) and `trapgate run` on
/// `text` (a site file `name`), the card's onBattery sent: (card, gateway, its stdout,
/// the card's trap socket, where traps go, the site's folder).
#[allow(clippy::type_complexity)]
fn card_on_battery(
    name: &str,
    port: u16,
    text: &str,
) -> Option<(
    std::process::Child,
    InProcess,
    std::sync::mpsc::Receiver<String>,
    UdpSocket,
    std::net::SocketAddr,
    std::path::PathBuf,
)> {
    let file = site_file(name, text);
    let dir = file.parent().expect("dir").to_path_buf();
    let card = apc_card(&dir, port, "rwcommunity private 127.0.0.1\n")?;
    let (gw, out, traps) = run_site(&file);
    let ups = UdpSocket::bind((CARD, 0)).expect("the card's trap socket");
    ups.send_to(&apc_trap(5), traps).expect("send");
    Some((card, gw, out, ups, traps, dir))
}

/// The card's log of SETs, once it holds `lines` (10 s at most).
fn sets_logged(dir: &Path, lines: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut text = String::new();
    while Instant::now() < deadline {
        text = std::fs::read_to_string(dir.join("sets.log")).unwrap_or_default();
        if text.lines().count() >= lines {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    text
}

/// `snmpget` of one object of the card.
fn card_reads(port: u16, object: &str) -> String {
    reads_at(CARD, port, object)
}

#[test]
fn a_shed_tiers_outlet_group_is_cycled_by_a_real_agents_set_and_the_running_tier_untouched() {
    let port = free_port(CARD);
    let text = site(port, "write_community = \"private\"", "", "");
    let Some((mut card, gw, out, ups, traps, dir)) = card_on_battery("power-v1", port, &text)
    else {
        return;
    };
    // Tier 2 shed at 1 s; its group committed; cut 2 s later: read, SET, read back.
    expect_line(
        &out,
        &["\"decision\":\"CycleOutlet\"", "ups-card/group 2", "nvr-a"],
    );
    let set = expect_line(&out, &["\"action\":\"OutletSet\"", "ups-card/group 2"]);
    assert!(
        set.contains("upsOutletGroupControlCommand.2 = upsOutletGroupImmediateRebootShutdown(9)"),
        "{set}"
    );
    expect_line(&out, &["\"action\":\"OutletAnswered\"", "noError"]);
    let read = expect_line(&out, &["\"action\":\"OutletRead\"", "\"busy\":true"]);
    assert!(read.contains("upsOutletGroupCommandPending(1)"), "{read}");
    // The card's own traps, as it sends them once it acts: group 2's recorded as
    // trapgate's cut; group 1 turned off by the card itself (its load shedding), with
    // nvr-b on it never told: an alert. A forger's (another community) first: refused.
    ups.send_to(&apc_group_trap(b"forged", 299, 1), traps)
        .expect("send");
    ups.send_to(&apc_group_trap(b"public", 299, 2), traps)
        .expect("send");
    let reported = expect_line(&out, &["\"action\":\"OutletReported\""]);
    assert!(
        reported.contains("ups-card/group 2")
            && reported.contains("upsOutletGroupTurnedOff")
            && reported.contains("\"ours\":true"),
        "the forged trap counted, or the card's did not: {reported}"
    );
    ups.send_to(&apc_group_trap(b"public", 299, 1), traps)
        .expect("send");
    let alert = expect_line(&out, &["\"kind\":\"outlet_cut_by_card\""]);
    assert!(
        alert.contains("ups-card/group 1") && alert.contains("nvr-b on it was not told"),
        "{alert}"
    );
    let log = sets_logged(&dir, 1);
    // The real agent's view: group 2 has its command pending, group 1 nothing.
    let pending2 = card_reads(port, ".1.3.6.1.4.1.318.1.1.1.12.1.2.1.4.2");
    let pending1 = card_reads(port, ".1.3.6.1.4.1.318.1.1.1.12.1.2.1.4.1");
    gw.stop();
    let _ = card.kill();
    let _ = card.wait();
    assert_eq!(log.trim(), "set group 2 = 9", "the card's SETs: {log}");
    assert_eq!(pending2, "1", "group 2's command pending");
    assert_eq!(pending1, "2", "group 1 untouched");
}

#[test]
fn a_write_community_at_v2c_cycles_the_group_and_a_read_only_one_is_refused_by_name() {
    // `public` is the card's read-only community.
    for (write, cycled) in [("private", true), ("public", false)] {
        let port = free_port(CARD);
        let text = site(
            port,
            &format!("write_community = \"{write}\"\nwrite_version = \"2c\""),
            "",
            "",
        );
        let Some((mut card, gw, out, _, _, dir)) = card_on_battery("power-v2c", port, &text) else {
            return;
        };
        let answered = expect_line(&out, &["\"action\":\"OutletAnswered\"", "ups-card/group 2"]);
        let log = sets_logged(&dir, usize::from(cycled));
        gw.stop();
        let _ = card.kill();
        let _ = card.wait();
        if cycled {
            assert!(answered.contains("noError"), "{answered}");
            assert_eq!(log.trim(), "set group 2 = 9", "the card's SETs: {log}");
        } else {
            // SNMPv2c's refusal by name (noAccess) where SNMPv1 says noSuchName; nothing set.
            assert!(answered.contains("\"status\":\"noAccess\""), "{answered}");
            assert!(log.is_empty(), "{log}");
        }
    }
}

#[test]
fn a_v3_card_is_cycled_by_its_write_user_at_auth_priv() {
    if !have_snmptrap() {
        return;
    }
    let port = free_port(CARD);
    let text = site(
        port,
        "version = \"3\"\nuser = \"upsv3user\"\nwrite_user = \"upsadmin\"",
        "",
        "\n[[usm_user]]\nname = \"upsv3user\"\nauth_protocol = \"SHA-256\"\nauth_passphrase = \"authpass123\"\npriv_protocol = \"AES\"\npriv_passphrase = \"privpass123\"\n\n[[usm_user]]\nname = \"upsadmin\"\nauth_protocol = \"SHA-256\"\nauth_passphrase = \"adminpass123\"\npriv_protocol = \"AES\"\npriv_passphrase = \"adminpriv123\"\n",
    );
    let file = site_file("power-v3", &text);
    let dir = file.parent().expect("dir").to_path_buf();
    let Some(mut card) = apc_card(
        &dir,
        port,
        "createUser upsv3user SHA-256 authpass123 AES privpass123\nrouser upsv3user priv\n\
         createUser upsadmin SHA-256 adminpass123 AES adminpriv123\nrwuser upsadmin priv\n\
         exactEngineID 0x80001f8804617063636172643031\n",
    ) else {
        return;
    };
    let (gw, out, traps) = run_site(&file);
    // The card's v3 onBattery, from its own engine and address.
    let sent = net_snmp_cmd("snmptrap")
        .args([
            "-M",
            "/dev/null",
            "-v",
            "3",
            "-e",
            "0x80001f8804617063636172643031",
        ])
        .args([
            "-u",
            "upsv3user",
            "-l",
            "authPriv",
            "-a",
            "SHA-256",
            "-A",
            "authpass123",
        ])
        .args([
            "-x",
            "AES",
            "-X",
            "privpass123",
            &format!("--clientaddr={CARD}"),
        ])
        .arg(traps.to_string())
        .args(["", "1.3.6.1.4.1.318.0.5"])
        .output()
        .expect("snmptrap runs");
    assert!(sent.status.success(), "{sent:?}");
    expect_line(
        &out,
        &[
            "\"action\":\"OutletAnswered\"",
            "ups-card/group 2",
            "noError",
        ],
    );
    let log = sets_logged(&dir, 1);
    gw.stop();
    let _ = card.kill();
    let _ = card.wait();
    assert_eq!(log.trim(), "set group 2 = 9", "the card's SETs: {log}");
}

#[test]
fn a_card_that_refuses_is_an_alert_and_wake_on_lan_takes_over() {
    let port = free_port(CARD);
    let wol = UdpSocket::bind("127.0.8.99:0").expect("the magic packet's catcher");
    wol.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    let text = site(
        port,
        // A community the card knows but only for reading: every SET is refused.
        "write_community = \"public\"",
        &format!(
            "wol = \"00:11:22:33:44:55\"\nwol_to = \"{}\"",
            wol.local_addr().expect("addr")
        ),
        "",
    );
    let Some((mut card, gw, out, ups, traps, dir)) = card_on_battery("power-refused", port, &text)
    else {
        return;
    };
    // Both forms refused (noSuchName in SNMPv1: the community may not write), each sent
    // three times (again 2 s, then 4 s after a refusal), then the alert.
    let mut refused = 0;
    let alert = loop {
        let line = out
            .recv_timeout(Duration::from_secs(30))
            .expect("the alert within 30 s");
        if line.contains("\"action\":\"OutletAnswered\"") && line.contains("noSuchName") {
            refused += 1;
        }
        if line.contains("\"kind\":\"outlet_not_cycled\"") {
            break line;
        }
    };
    assert_eq!(refused, 6, "each form three times");
    assert!(
        alert.contains("ups-card/group 2") && alert.contains("refused every form"),
        "{alert}"
    );
    // Mains back: nvr-a, halted on a live outlet, is woken.
    ups.send_to(&apc_trap(9), traps).expect("send");
    let mut packet = [0u8; 200];
    let (n, _) = wol.recv_from(&mut packet).expect("a magic packet");
    expect_line(&out, &["\"action\":\"WakeSent\"", "nvr-a"]);
    gw.stop();
    let _ = card.kill();
    let _ = card.wait();
    assert_eq!(n, 102);
    assert_eq!(packet[..6], [0xff; 6]);
    assert!(
        packet[6..n]
            .chunks(6)
            .all(|c| c == [0, 0x11, 0x22, 0x33, 0x44, 0x55])
    );
    assert!(
        std::fs::read_to_string(dir.join("sets.log"))
            .unwrap_or_default()
            .is_empty(),
        "the card took nothing"
    );
}

// ---------------------------------------------------------------------------------
// The stories of captures/, replayed: the gateway's own gets and sets seen on the wire,
// and the card's answers, count as they do live; a forged answer does not.

fn capture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("captures")
        .join(name)
}

/// `trapgate replay CAPTURE --config SITE`'s lines.
fn replayed(pcap: &Path, site: &Path) -> Vec<String> {
    replayed_with(pcap, site, &[])
}

/// The same, with `args` after.
fn replayed_with(pcap: &Path, site: &Path, args: &[&str]) -> Vec<String> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trapgate"))
        .args(["replay", pcap.to_str().expect("UTF-8")])
        .args(["--config", site.to_str().expect("UTF-8")])
        .args(args)
        .output()
        .expect("trapgate replay runs");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .expect("UTF-8")
        .lines()
        .map(str::to_string)
        .collect()
}

fn position(lines: &[String], want: &[&str]) -> usize {
    lines
        .iter()
        .position(|l| want.iter().all(|w| l.contains(w)))
        .unwrap_or_else(|| panic!("no line with {want:?} in\n{}", lines.join("\n")))
}

#[test]
fn power_back_mid_shedding_with_an_outlet_group_ends_with_the_shed_recorder_back() {
    let lines = replayed(
        &capture("story-power-back-outlet.pcap"),
        &capture("story-power-back-outlet.site.toml"),
    );
    let committed = position(
        &lines,
        &["\"decision\":\"CycleOutlet\"", "group 2", "nvr-244"],
    );
    let read = position(
        &lines,
        &[
            "\"action\":\"OutletRead\"",
            "NoCommandPending",
            "\"busy\":false",
        ],
    );
    let set = position(
        &lines,
        &["\"action\":\"OutletSet\"", "ImmediateRebootShutdown(9)"],
    );
    let taken = position(&lines, &["\"action\":\"OutletAnswered\"", "noError"]);
    let pending = position(&lines, &["\"action\":\"OutletRead\"", "\"busy\":true"]);
    // The card's own traps, recorded as trapgate's cut: off, then on again once mains
    // is back (the cycle done).
    let off = position(
        &lines,
        &[
            "\"action\":\"OutletReported\"",
            "upsOutletGroupTurnedOff",
            "\"ours\":true",
        ],
    );
    let on = position(
        &lines,
        &[
            "\"action\":\"OutletReported\"",
            "upsOutletGroupTurnedOn",
            "\"state\":\"done\"",
        ],
    );
    let back = position(&lines, &["\"action\":\"Back\"", "nvr-244"]);
    assert!(committed < read && read < set && set < taken && taken < pending && pending < back);
    assert!(pending < off && off < on && on < back);
    // The cut waits for nvr-244's 90 s of shutdown time after its order (08:02:00).
    assert!(
        lines[committed].contains("\"at\":\"2019-03-07T08:03:30.000000Z\""),
        "{}",
        lines[committed]
    );
    assert!(
        !lines.iter().any(|l| l.contains("NotBack")),
        "{}",
        lines.join("\n")
    );
    assert!(
        !lines.iter().any(|l| l.contains("group 1")),
        "tier 1, spared, is not touched"
    );
}

#[test]
fn a_gateway_restarted_mid_cycle_reads_the_card_and_sets_nothing_twice() {
    // The SET of group 2 left at 08:03:30, its answer lost; the gateway dies and is
    // restarted on its journal at 08:03:32.
    let lines = replayed_with(
        &capture("story-restart-mid-cycle.pcap"),
        &capture("story-restart-mid-cycle.site.toml"),
        &["--restart-at", "212"],
    );
    let set = position(
        &lines,
        &["\"action\":\"OutletSet\"", "ImmediateRebootShutdown(9)"],
    );
    let started = position(
        &lines,
        &[
            "\"action\":\"Started\"",
            "08:03:32",
            "replay restarted",
            "1 acknowledged",
        ],
    );
    let pending = position(&lines, &["\"action\":\"OutletRead\"", "\"busy\":true"]);
    let back = position(&lines, &["\"action\":\"Back\"", "nvr-244"]);
    assert!(set < started && started < pending && pending < back);
    let all = lines.join("\n");
    assert_eq!(all.matches("\"action\":\"OutletSet\"").count(), 1, "{all}");
    assert_eq!(
        all.matches("\"decision\":\"CycleOutlet\"").count(),
        1,
        "the commitment is the journal's, not decided again: {all}"
    );
    assert!(
        !all.contains("NotBack") && !all.contains("outlet_not_cycled"),
        "{all}"
    );
    // The restarted gateway's read (request id 7715) answered by a forger who knows no
    // write community: refused, so the command is never taken for pending on its word.
    let forged = edited("story-restart-mid-cycle.pcap", "restart-forged", |f| {
        if f.windows(4).any(|w| w == [2, 2, 0x1e, 0x23]) {
            in_card_answers(f, b"private", b"privatX");
        }
    });
    let lines = replayed_with(
        &forged,
        &capture("story-restart-mid-cycle.site.toml"),
        &["--restart-at", "212"],
    );
    let _ = std::fs::remove_file(&forged);
    let all = lines.join("\n");
    let started = position(&lines, &["\"action\":\"Started\""]);
    assert!(
        !lines[started..]
            .iter()
            .any(|l| l.contains("\"action\":\"OutletRead\"")),
        "a forged answer counted: {all}"
    );
    position(&lines, &["\"summary\"", "\"refused\":1"]);
}

#[test]
fn a_card_refusing_both_forms_is_an_alert_and_the_recorder_is_woken() {
    let lines = replayed(
        &capture("story-card-refuses.pcap"),
        &capture("story-card-refuses.site.toml"),
    );
    let first = position(
        &lines,
        &[
            "\"action\":\"OutletAnswered\"",
            "ImmediateRebootShutdown",
            "noSuchName",
        ],
    );
    let second = position(
        &lines,
        &[
            "\"action\":\"OutletAnswered\"",
            "DelayedRebootShutdown",
            "noSuchName",
        ],
    );
    let alert = position(
        &lines,
        &["\"kind\":\"outlet_not_cycled\"", "ups-main/group 2"],
    );
    let woken = position(
        &lines,
        &["\"action\":\"WakeSent\"", "nvr-244", "192.168.61.255:9"],
    );
    let back = position(&lines, &["\"action\":\"Back\"", "nvr-244"]);
    assert!(first < second && second < alert && alert < woken && woken < back);
}

#[test]
fn a_whole_ups_is_cycled_only_after_every_recorder_it_feeds_had_its_shutdown_time() {
    let lines = replayed(
        &capture("story-whole-ups.pcap"),
        &capture("story-whole-ups.site.toml"),
    );
    let acks = position(&lines, &["\"decision\":\"Acknowledged\"", "nvr-244"]);
    let set = position(
        &lines,
        &[
            "\"action\":\"OutletSet\"",
            "upsAdvControlRebootShutdownUps.0 = rebootShutdownUps(2)",
        ],
    );
    assert!(acks < set);
    // Both were ordered at 08:00:05 with 90 s to shut down.
    assert!(
        lines[set].starts_with("{\"time\":\"2019-03-07T08:01:35"),
        "{}",
        lines[set]
    );
    position(&lines, &["\"action\":\"Back\"", "nvr-244"]);
    position(&lines, &["\"action\":\"Back\"", "nvr-251"]);
}

/// Capture `source` with every frame passed through `edit` (the frame's
/// bytes; the UDP checksum is not checked by the replay, as tshark does not).
fn edited(source: &str, name: &str, edit: impl Fn(&mut Vec<u8>)) -> std::path::PathBuf {
    use pcap_file::pcap::{PcapReader, PcapWriter};
    let mut reader =
        PcapReader::new(std::fs::File::open(capture(source)).expect("open")).expect("a pcap");
    let path = std::env::temp_dir().join(format!("trapgate-{name}-{}.pcap", std::process::id()));
    let mut writer = PcapWriter::with_header(
        std::fs::File::create(&path).expect("create"),
        reader.header(),
    )
    .expect("header");
    while let Some(p) = reader.next_packet() {
        let p = p.expect("a packet");
        let mut data = p.data.to_vec();
        edit(&mut data);
        let mut q = p.into_owned();
        q.data = data.into();
        writer.write_packet(&q).expect("write");
    }
    path
}

/// A frame from the card's agent (192.168.61.250:161) with the write community comes
/// from another port of its address (1161).
fn from_another_port(f: &mut [u8]) {
    if f.get(26..30) == Some(&[192, 168, 61, 250][..])
        && f.get(34..36) == Some(&[0, 161][..])
        && f.windows(7).any(|w| w == b"private")
    {
        f[34..36].copy_from_slice(&[0x04, 0x89]);
    }
}

/// Replaces `from` by `to` (same length) in a frame from the card's agent
/// (192.168.61.250:161) that carries the write community.
fn in_card_answers(frame: &mut [u8], from: &[u8], to: &[u8]) {
    let from_card = frame.windows(4).any(|w| w == [192, 168, 61, 250])
        && frame.windows(7).any(|w| w == b"private");
    // The source address sits before the destination: the answers are from the card.
    let src_is_card = frame.get(26..30) == Some(&[192, 168, 61, 250][..]);
    if from_card
        && src_is_card
        && let Some(i) = frame.windows(from.len()).position(|w| w == from)
    {
        frame[i..i + from.len()].copy_from_slice(to);
    }
}

#[test]
fn forged_answers_in_a_capture_do_not_cycle_an_outlet() {
    let site = capture("story-power-back-outlet.site.toml");
    // The card's answers with another community (a forger who knows no write
    // community), and from another port of the card's address.
    let community = edited("story-power-back-outlet.pcap", "forged-community", |f| {
        in_card_answers(f, b"private", b"privatX")
    });
    let port = edited("story-power-back-outlet.pcap", "forged-port", |f| {
        from_another_port(f)
    });
    for forged in [community, port] {
        let lines = replayed(&forged, &site);
        let _ = std::fs::remove_file(&forged);
        assert!(
            !lines
                .iter()
                .any(|l| l.contains("\"action\":\"OutletRead\"") || l.contains("noError")),
            "a forged answer counted: {}",
            lines.join("\n")
        );
        // Unanswered: each form sent once, the card read (three tries, 2 s apart)
        // before anything is written again, then the next form; then the operator is
        // told. Due at 08:03:30: the read's three tries, the first SET at +6 s, the
        // second 8 s later.
        position(
            &lines,
            &["\"kind\":\"outlet_not_cycled\"", "ups-main/group 2"],
        );
        let sets: Vec<&String> = lines
            .iter()
            .filter(|l| l.contains("\"action\":\"OutletSet\""))
            .collect();
        assert_eq!(sets.len(), 2, "{}", lines.join("\n"));
        assert!(
            sets[0].starts_with("{\"time\":\"2019-03-07T08:03:36.000000Z\"")
                && sets[0].contains("ImmediateRebootShutdown(9)")
                && sets[1].starts_with("{\"time\":\"2019-03-07T08:03:44.000000Z\"")
                && sets[1].contains("DelayedRebootShutdown(10)"),
            "{sets:?}"
        );
    }
}

/// A card of the test's own on `sock`: answers each request with `answer(kind, value
/// asked)` (the value answered) and returns the first set's bytes.
fn card_catching_a_set(sock: &UdpSocket) -> Option<Vec<u8>> {
    use trapgate::wire::{Pdu, PduType, Value, VarBind};
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = [0u8; 1500];
    while Instant::now() < deadline {
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let arena = bumpalo::Bump::new();
        let Ok(m) = Message::parse(&buf[..n], &arena) else {
            continue;
        };
        let Pdu::Request(q) = &m.pdu else { continue };
        let value = match (q.kind, q.varbinds.first().map(|v| &v.value)) {
            // Its pending command: none.
            (PduType::GET_REQUEST, _) => Value::Integer(2),
            (PduType::SET_REQUEST, Some(v)) => *v,
            _ => continue,
        };
        let vbs = [VarBind {
            name: q.varbinds[0].name,
            value,
        }];
        let answer = encode::to_vec(&Message::pdu(
            m.version,
            m.community,
            PduType::RESPONSE,
            q.request_id,
            &vbs,
        ));
        sock.send_to(&answer, from).expect("answer");
        if q.kind == PduType::SET_REQUEST {
            return Some(buf[..n].to_vec());
        }
    }
    None
}

#[test]
fn wireshark_dissects_the_set_trapgate_sends_as_the_mib_says() {
    if which("tshark").is_none() || which("text2pcap").is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "tshark is not installed, and CI=true: .ci/run must install it"
        );
        trapgate::testing::skip("tshark is not installed: the captured SET was not dissected");
        return;
    }
    let sock = UdpSocket::bind((CARD, 0)).expect("the card's socket");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let port = sock.local_addr().expect("addr").port();
    let text = site(port, "write_community = \"private\"", "", "");
    let file = site_file("power-tshark", &text);
    let (gw, out, traps) = run_site(&file);
    UdpSocket::bind((CARD, 0))
        .expect("the card's trap socket")
        .send_to(&apc_trap(5), traps)
        .expect("send");
    let set = card_catching_a_set(&sock);
    expect_line(&out, &["\"action\":\"OutletAnswered\"", "noError"]);
    gw.stop();
    let set = set.expect("trapgate's set reached the card");
    // The datagram as a capture holds it (text2pcap wraps it in UDP, IPv4 and Ethernet).
    let dir = file.parent().expect("dir");
    let hex: String = set
        .chunks(16)
        .enumerate()
        .map(|(i, c)| {
            let bytes: Vec<String> = c.iter().map(|b| format!("{b:02x}")).collect();
            format!("{:06x} {}\n", i * 16, bytes.join(" "))
        })
        .collect();
    std::fs::write(dir.join("set.txt"), hex).expect("write");
    let pcap = dir.join("set.pcap");
    let wrapped = std::process::Command::new("text2pcap")
        .args([
            "-q",
            "-4",
            "127.0.0.1,127.0.8.1",
            "-u",
            &format!("40162,{port}"),
        ])
        .arg(dir.join("set.txt"))
        .arg(&pcap)
        .output()
        .expect("text2pcap runs");
    assert!(wrapped.status.success(), "{wrapped:?}");
    let out = std::process::Command::new("tshark")
        .args([
            "-r",
            pcap.to_str().expect("UTF-8"),
            "-d",
            &format!("udp.port=={port},snmp"),
        ])
        .args(["-T", "fields", "-E", "separator=|"])
        .args([
            "-e",
            "snmp.community",
            "-e",
            "snmp.data",
            "-e",
            "snmp.name",
            "-e",
            "snmp.value.int",
        ])
        .output()
        .expect("tshark runs");
    let fields = String::from_utf8_lossy(&out.stdout).trim().to_string();
    // community, PDU 3 (set-request), the group's control command, 9
    // (upsOutletGroupImmediateRebootShutdown in PowerNet-MIB).
    assert_eq!(
        fields, "private|3|1.3.6.1.4.1.318.1.1.1.12.3.2.1.3.2|9",
        "tshark's dissection: {out:?}"
    );
}

/// `trapgate check-config --probe FILE`, once the card on `port` answers: its exit
/// code and lines.
fn probed(file: &Path, port: u16) -> (Option<i32>, String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while port != 0
        && card_reads(port, ".1.3.6.1.4.1.318.1.1.1.4.1.1.0").is_empty()
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trapgate"))
        .args(["check-config", "--probe", file.to_str().expect("UTF-8")])
        .output()
        .expect("trapgate runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn the_probe_names_a_cards_wrong_delays_and_a_missing_trap_receiver_and_writes_nothing() {
    let port = free_port(CARD);
    // The site says the card cuts its outlets 3 min after its shutdown starts; the card
    // says 10 min. Group 2's power-off delay is 1 s, under nvr-a's 2 s of shutdown. The
    // card's only trap receiver is an old NMS.
    let text = site(port, "write_community = \"private\"", "", "")
        .replace("outlet_off_delay = \"10m\"", "outlet_off_delay = \"3m\"");
    let file = site_file("probe-wrong", &text);
    let dir = file.parent().expect("dir").to_path_buf();
    let Some(mut card) = apc_card_set(&dir, port, "", "group2off=1") else {
        return;
    };
    let (code, said) = probed(&file, port);
    // `run` reads the same at its start: each disagreement an alert.
    let mut gw = InProcess::start(&std::fs::read_to_string(&file).expect("the site"), None);
    let out = gw.take_out();
    let alert = expect_line(
        &out,
        &[
            "\"kind\":\"card_setting\"",
            "upsOutletGroupConfigPowerOffDelay.2",
        ],
    );
    expect_line(
        &out,
        &["\"kind\":\"card_setting\"", "not an enabled trap receiver"],
    );
    gw.stop();
    let _ = card.kill();
    let _ = card.wait();
    assert!(alert.contains("\"ups\":\"ups-card\""), "{alert}");
    assert_eq!(code, Some(1), "{said}");
    for want in [
        "ups-card: disagreement: upsAdvConfigShutoffDelay.0 = 600 s on the card, but the site's outlet_off_delay = 180 s",
        "ups-card: disagreement: upsOutletGroupConfigPowerOffDelay.2 = 1 s on the card (Outlet Group 2), but recorder `nvr-a` on that group needs 2 s to shut down",
        "ups-card: disagreement: the gateway's address 127.0.0.1 is not an enabled trap receiver of the card (receiverAddr: 192.0.2.5 (enabled, powernet))",
        "probe: 1 UPS and 0 PDU read, 3 disagreements",
    ] {
        assert!(said.contains(want), "{want:?} not in:\n{said}");
    }
    assert!(
        std::fs::read_to_string(dir.join("sets.log"))
            .unwrap_or_default()
            .is_empty(),
        "the probe wrote to the card"
    );

    // The card set as the site says, the gateway among its receivers: nothing to say.
    let port = free_port(CARD);
    let text = site(port, "write_community = \"private\"", "", "");
    let file = site_file("probe-right", &text);
    let dir = file.parent().expect("dir").to_path_buf();
    let Some(mut card) = apc_card_set(&dir, port, "", "receiver=127.0.0.1") else {
        return;
    };
    let (code, said) = probed(&file, port);
    let _ = card.kill();
    let _ = card.wait();
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains("receiverAddr 127.0.0.1 is an enabled trap receiver (both traps)")
            && said.contains("upsAdvConfigLowBatteryRunTime.0 = 300 s")
            && said.contains("0 disagreements"),
        "{said}"
    );
}

#[test]
fn a_shutoff_delay_the_site_leaves_out_is_read_from_the_card() {
    let port = free_port(CARD);
    let text = site(port, "write_community = \"private\"", "", "")
        .replace("outlet_off_delay = \"10m\"\n", "");
    let file = site_file("probe-taken", &text);
    let dir = file.parent().expect("dir").to_path_buf();
    let Some(mut card) = apc_card_set(&dir, port, "", "receiver=127.0.0.1") else {
        return;
    };
    let (code, said) = probed(&file, port);
    assert_eq!(code, Some(0), "{said}");
    for want in [
        "ups-card: upsAdvConfigShutoffDelay.0 = 600 s\n",
        "ups-card: outlet_off_delay = 600 s, taken from the card\n",
    ] {
        assert!(said.contains(want), "{want:?} not in:\n{said}");
    }
    // `run` takes it at its start, journaled (a restart on the journal keeps it).
    let journal = dir.join("journal");
    let _ = std::fs::remove_file(&journal);
    let gw = InProcess::start(
        &std::fs::read_to_string(&file).expect("the site"),
        Some(journal.clone()),
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut taken = Vec::new();
    while taken.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        taken.clear();
        let _ = trapgate::daemon::journal::read(&journal, |_, r| {
            if let trapgate::engine::record::Record::Input(
                trapgate::engine::record::Input::OffDelay { ups, seconds },
            ) = r
            {
                taken.push((ups.to_string(), seconds));
            }
        });
    }
    gw.stop();
    let _ = card.kill();
    let _ = card.wait();
    assert_eq!(taken, [("ups-card".to_string(), 600)]);

    // A card that would cut its outlets before its recorders are down says so.
    let port = free_port(CARD);
    let text = site(port, "write_community = \"private\"", "", "")
        .replace("outlet_off_delay = \"10m\"\n", "");
    let file = site_file("probe-taken-short", &text);
    let dir = file.parent().expect("dir").to_path_buf();
    let Some(mut card) = apc_card_set(&dir, port, "", "receiver=127.0.0.1 shutoff=1") else {
        return;
    };
    let (code, said) = probed(&file, port);
    let _ = card.kill();
    let _ = card.wait();
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("ups-card: disagreement: upsAdvConfigShutoffDelay.0 = 1 s on the card (the site leaves outlet_off_delay to it), but recorder `nvr-b` needs 2 s to shut down"),
        "{said}"
    );
}

#[test]
fn the_probe_says_which_card_does_not_answer() {
    // Nothing listens on the card's port (a closed port on loopback).
    let port = free_port(CARD);
    let file = site_file(
        "probe-silent",
        &site(port, "write_community = \"private\"", "", ""),
    );
    let (code, said) = probed(&file, 0);
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains(&format!(
            "ups-card: disagreement: 127.0.8.1:{port}: nothing listens there"
        )),
        "{said}"
    );
}

/// snmpd playing `mode` (`tests/fixtures/control_card.py`) under `subtree` on
/// `address:port`, its SETs logged to `dir/sets.log`, with `access` lines.
fn control_card(
    dir: &Path,
    address: &str,
    port: u16,
    mode: &str,
    subtree: &str,
    access: &str,
) -> Option<std::process::Child> {
    fixture_card(
        dir,
        (address, port),
        access,
        (subtree, "control_card.py"),
        mode,
    )
}

/// `snmpget -v2c -c public` of `object` at `address:port`.
fn reads_at(address: &str, port: u16, object: &str) -> String {
    let out = net_snmp_cmd("snmpget")
        .args(["-M", "/dev/null", "-On", "-Oqv", "-v2c", "-c", "public"])
        .arg(format!("{address}:{port}"))
        .arg(object)
        .output()
        .expect("snmpget runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn an_rfc1628_ups_output_is_cycled_with_a_longer_startup_countdown_in_one_set() {
    if !have_snmptrap() {
        return;
    }
    let port = free_port(CARD);
    // Both recorders on the UPS's whole output, both in tier 2: the output is cut once
    // both have had their shutdown time.
    let text = site(port, "write_community = \"private\"", "", "")
        .replace("vendor = \"apc\"", "vendor = \"ups-mib\"")
        .replace(
            "outlet = { ups = \"ups-card\", group = 2 }",
            "outlet = { ups = \"ups-card\" }",
        )
        .replace(
            "outlet = { ups = \"ups-card\", group = 1 }",
            "outlet = { ups = \"ups-card\" }",
        )
        .replace("tier = 1", "tier = 2");
    let file = site_file("power-rfc1628", &text);
    let dir = file.parent().expect("dir").to_path_buf();
    let Some(mut card) = control_card(
        &dir,
        CARD,
        port,
        "rfc1628",
        ".1.3.6.1.2.1.33",
        "rocommunity public 127.0.0.0/8\nrwcommunity private 127.0.0.1\n",
    ) else {
        return;
    };
    let (gw, out, traps) = run_site(&file);
    // The card's upsTrapOnBattery, v2c, from its own address.
    let sent = net_snmp_cmd("snmptrap")
        .args([
            "-M",
            "/dev/null",
            "-v",
            "2c",
            "-c",
            "public",
            &format!("--clientaddr={CARD}"),
        ])
        .arg(traps.to_string())
        .args(["", "1.3.6.1.2.1.33.2.1"])
        .output()
        .expect("snmptrap runs");
    assert!(sent.status.success(), "{sent:?}");
    expect_line(
        &out,
        &[
            "\"decision\":\"CycleOutlet\"",
            "\"outlet\":\"ups-card\"",
            "nvr-a",
            "nvr-b",
        ],
    );
    let set = expect_line(
        &out,
        &["\"action\":\"OutletSet\"", "\"outlet\":\"ups-card\""],
    );
    assert!(
        set.contains("upsShutdownType.0 = output(1), upsStartupAfterDelay.0 = 90, upsShutdownAfterDelay.0 = 10"),
        "{set}"
    );
    expect_line(&out, &["\"action\":\"OutletAnswered\"", "noError"]);
    let read = expect_line(
        &out,
        &["\"action\":\"OutletRead\"", "upsShutdownAfterDelay.0"],
    );
    assert!(
        read.contains("\"busy\":true"),
        "a countdown under way: {read}"
    );
    let log = sets_logged(&dir, 3);
    let left: i64 = reads_at(CARD, port, ".1.3.6.1.2.1.33.1.8.2.0")
        .parse()
        .unwrap_or(-1);
    let startup = reads_at(CARD, port, ".1.3.6.1.2.1.33.1.8.3.0");
    gw.stop();
    let _ = card.kill();
    let _ = card.wait();
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        [
            "set .1.3.6.1.2.1.33.1.8.1.0 = 1",
            "set .1.3.6.1.2.1.33.1.8.3.0 = 90",
            "set .1.3.6.1.2.1.33.1.8.2.0 = 10",
        ],
        "one SET, the startup countdown before the shutdown one"
    );
    assert!(
        (0..=10).contains(&left),
        "the shutdown countdown runs: {left}"
    );
    assert_eq!(
        startup, "90",
        "the output comes back 90 s later, after mains"
    );
}

#[test]
fn a_pdu_outlet_is_switched_off_once_shed_and_on_again_when_mains_returns() {
    let port = free_port("127.0.8.2");
    // The UPS's card is not polled here (nothing answers on its port).
    let text = site(free_port(CARD), "", "", "")
        .replace(
            "outlet = { ups = \"ups-card\", group = 2 }",
            "outlet = { pdu = \"pdu-a\", outlet = 3 }",
        )
        .replace("outlet = { ups = \"ups-card\", group = 1 }\n", "")
        + &format!(
            "\n[[pdu]]\nname = \"pdu-a\"\naddress = \"127.0.8.2\"\nport = {port}\nvendor = \"apc-rpdu2\"\nwrite_community = \"private\"\n"
        );
    let file = site_file("power-pdu", &text);
    let dir = file.parent().expect("dir").to_path_buf();
    let Some(mut pdu) = control_card(
        &dir,
        "127.0.8.2",
        port,
        "rpdu2",
        ".1.3.6.1.4.1.318",
        "rocommunity public 127.0.0.0/8\nrwcommunity private 127.0.0.1\n",
    ) else {
        return;
    };
    let (gw, out, traps) = run_site(&file);
    let ups = UdpSocket::bind((CARD, 0)).expect("the UPS's trap socket");
    ups.send_to(&apc_trap(5), traps).expect("send");
    let off = expect_line(&out, &["\"action\":\"OutletSet\"", "pdu-a/outlet 3"]);
    assert!(
        off.contains("rPDU2OutletSwitchedControlCommand.3 = immediateOff(2)"),
        "{off}"
    );
    expect_line(
        &out,
        &[
            "\"action\":\"OutletRead\"",
            "pdu-a/outlet 3",
            "off(1)",
            "\"busy\":true",
        ],
    );
    let state_off = reads_at("127.0.8.2", port, ".1.3.6.1.4.1.318.1.1.26.9.2.3.1.5.3");
    // Mains back: the PDU has no battery to wait with; trapgate switches it on.
    ups.send_to(&apc_trap(9), traps).expect("send");
    let on = expect_line(
        &out,
        &[
            "\"action\":\"OutletSet\"",
            "pdu-a/outlet 3",
            "immediateOn(1)",
        ],
    );
    expect_line(
        &out,
        &["\"action\":\"OutletAnswered\"", "pdu-a/outlet 3", "noError"],
    );
    let log = sets_logged(&dir, 2);
    let state_on = reads_at("127.0.8.2", port, ".1.3.6.1.4.1.318.1.1.26.9.2.3.1.5.3");
    let other = reads_at("127.0.8.2", port, ".1.3.6.1.4.1.318.1.1.26.9.2.3.1.5.4");
    gw.stop();
    let _ = pdu.kill();
    let _ = pdu.wait();
    assert!(on.contains("\"attempt\":1"), "{on}");
    assert_eq!(state_off, "1", "outlet 3 off while on battery");
    assert_eq!(state_on, "2", "outlet 3 on again");
    assert_eq!(other, "2", "outlet 4 untouched");
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        [
            "set .1.3.6.1.4.1.318.1.1.26.9.2.4.1.5.3 = 2",
            "set .1.3.6.1.4.1.318.1.1.26.9.2.4.1.5.3 = 1",
        ]
    );
}

#[test]
fn the_probe_believes_no_forged_answer() {
    use trapgate::wire::{Pdu, PduType, Value, VarBind};
    // A card of the test's own that answers every request twice, forged: under another
    // request id, and with another community; then once from another port with
    // everything right. None counts: the probe says the card did not answer.
    let sock = UdpSocket::bind((CARD, 0)).expect("the card's socket");
    let other = UdpSocket::bind((CARD, 0)).expect("another port of the card's address");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let port = sock.local_addr().expect("addr").port();
    let file = site_file(
        "probe-forged",
        &site(port, "write_community = \"private\"", "", ""),
    );
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = std::sync::Arc::clone(&done);
    let forger = std::thread::spawn(move || {
        // Until the probe has ended (15 s at most).
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut buf = [0u8; 1500];
        let mut seen = 0;
        while Instant::now() < deadline && !stop.load(std::sync::atomic::Ordering::SeqCst) {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let arena = bumpalo::Bump::new();
            let Ok(m) = Message::parse(&buf[..n], &arena) else {
                continue;
            };
            let Pdu::Request(q) = m.pdu else { continue };
            seen += 1;
            let vbs = [VarBind {
                name: q.varbinds[0].name,
                // 600 s: what the site says, were it believed.
                value: Value::TimeTicks(60_000),
            }];
            let answer = |id: i32, community: &'static [u8]| {
                encode::to_vec(&Message::pdu(
                    m.version,
                    community,
                    PduType::RESPONSE,
                    id,
                    &vbs,
                ))
            };
            let _ = sock.send_to(&answer(q.request_id.wrapping_add(1), b"public"), from);
            let _ = sock.send_to(&answer(q.request_id, b"forged"), from);
            let _ = other.send_to(&answer(q.request_id, b"public"), from);
        }
        seen
    });
    let (code, said) = probed(&file, 0);
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = forger.join().expect("the forger");
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains(&format!(
            "ups-card: disagreement: 127.0.8.1:{port}: no answer in 3 tries"
        )),
        "{said}"
    );
    assert!(!said.contains("as the site says"), "{said}");
    assert_eq!(seen, 3, "the first object asked three times, then no more");
}
