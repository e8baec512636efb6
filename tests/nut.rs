//! Recorders that are Network UPS Tools clients, on loopback: NUT's own `upsc`,
//! `upscmd` and `upsmon` (Debian's nut-client 2.8; two secondaries with a SHUTDOWNCMD
//! that writes a file, each with its own /run/nut) against `trapgate run`'s NUT server.
//! The tier-2 upsmon and a Synology-style client see FSD at tier 2's grace while the
//! tier-1 upsmon still sees OB; low battery takes the rest; each upsmon shuts down,
//! logs out and is Acknowledged. apcupsd as a network client of the NIS server. And a
//! flood of the NUT server. Skips, saying so, when nut-client is missing (`bash
//! .ci/run` installs it).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// upsmon's real binary (Debian's /usr/sbin/upsmon is a wrapper that reads
/// /etc/nut/nut.conf).
const UPSMON: &str = "/lib/nut/upsmon";

fn have_nut() -> bool {
    let ok = Path::new(UPSMON).exists()
        && Command::new("upsc")
            .arg("-h")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
    if !ok {
        trapgate::testing::skip(
            "NUT's upsc and upsmon are not installed (apt-get install nut-client, or bash .ci/run)",
        );
    }
    ok
}

fn upsc(ups_at: &str, var: &str) -> String {
    let out = Command::new("upsc")
        .args([ups_at, var])
        .output()
        .expect("upsc runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Whether this process may give a child its own mount namespace (root, and a kernel
/// that allows it): each upsmon then has its own /run/nut.
fn have_private_run() -> bool {
    let ok = Command::new("unshare")
        .args([
            "-m",
            "sh",
            "-c",
            "mkdir -p /run/nut && mount -t tmpfs tmpfs /run/nut",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        trapgate::testing::skip(
            "two upsmon need their own /run/nut (upsmon 2.8 keeps its pid there whatever its environment says), made with unshare -m as root",
        );
    }
    ok
}

/// A secondary upsmon watching `monitor` (`UPS@HOST:PORT USER PASSWORD`), its
/// configuration in `dir`, its SHUTDOWNCMD writing `down`, with a /run/nut of its own.
fn upsmon(dir: &Path, monitor: &str, down: &Path) -> std::process::Child {
    std::fs::create_dir_all(dir).expect("its directory");
    let _ = std::fs::remove_file(down);
    std::fs::write(dir.join("nut.conf"), "MODE=netclient\n").expect("nut.conf");
    let conf = dir.join("upsmon.conf");
    let (ups, rest) = monitor.split_once(' ').expect("UPS@HOST USER PASSWORD");
    std::fs::write(
        &conf,
        format!(
            "MONITOR {ups} 1 {rest} secondary\nMINSUPPLIES 1\nSHUTDOWNCMD \"/bin/sh -c 'echo down > {}'\"\nPOLLFREQ 1\nPOLLFREQALERT 1\nDEADTIME 15\nFINALDELAY 0\nRUN_AS_USER root\n",
            down.display()
        ),
    )
    .expect("upsmon.conf");
    let _ = Command::new("chmod").arg("600").arg(&conf).status();
    Command::new("unshare")
        .args([
            "-m",
            "sh",
            "-c",
            &format!("mkdir -p /run/nut && mount -t tmpfs tmpfs /run/nut && exec {UPSMON} -F -D"),
        ])
        .env("NUT_CONFPATH", dir)
        .env("NUT_STATEPATH", dir)
        .env("NUT_ALTPIDPATH", dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("upsmon starts")
}

/// Waits up to `secs` for `file` to exist.
fn appears(file: &Path, secs: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !file.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    file.exists()
}

/// Two upsmon secondaries behind one address, told apart by their user names, and a
/// Synology-style client (UPS `ups`, monuser / secret). On battery, tier 2's grace
/// shuts down its upsmon (FSD, its SHUTDOWNCMD, its logout: Acknowledged) and shows the
/// NAS FSD, while the tier-1 upsmon keeps seeing OB and keeps running; low battery
/// takes the tier-1 upsmon, which logs out and is Acknowledged too.
#[test]
fn upsmon_and_a_synology_style_client_are_staged_by_tier_and_upsmon_acknowledges() {
    if !have_nut() || !have_private_run() {
        return;
    }
    let port = free_port();
    let site = format!(
        r#"[gateway]
listen = ["127.0.0.1:0"]
agent = "127.0.0.1:0"
nut = "127.0.0.1:{port}"

[policy]
grace = {{ 1 = "10m", 2 = "3s" }}
shutdown_below_charge = 30
shutdown_below_runtime = "5m"
confirm_by_poll = false

[[ups]]
name = "ups-main"
address = "127.0.0.5"
vendor = "apc"
outlet_off_delay = "3m"

# A Synology NAS: it asks for the UPS named "ups" as monuser / secret.
[[recorder]]
name = "nas-2"
address = "127.0.0.1"
ups = "ups-main"
tier = 2
shutdown_time = "60s"
kind = "nut"
nut_user = "monuser"
nut_password = "secret"
nut_ups = "ups"

# A Linux host running upsmon as a secondary, tier 2, behind the same address.
[[recorder]]
name = "srv-2"
address = "127.0.0.1"
ups = "ups-main"
tier = 2
shutdown_time = "60s"
kind = "nut"
nut_user = "upsmon2"
nut_password = "pass2word"
nut_ups = "ups-tier2"

# Another, tier 1.
[[recorder]]
name = "srv-1"
address = "127.0.0.1"
ups = "ups-main"
tier = 1
shutdown_time = "60s"
kind = "nut"
nut_user = "upsmon1"
nut_password = "pass1word"
"#
    );
    let file = site_file("nut", &site);
    let dir = file.parent().expect("dir").to_path_buf();
    let (down1, down2) = (dir.join("srv-1-down"), dir.join("srv-2-down"));
    let (mut gw, traps, metrics) = in_process_with_http(&file);
    let out = std::mem::replace(&mut gw.out, std::sync::mpsc::channel().1);
    let (traps, metrics) = (traps.to_string(), metrics.to_string());
    let nut = format!("127.0.0.1:{port}");
    // Before the outage: on line, as the clients see it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while upsc(&format!("ups@{nut}"), "ups.status") != "OL" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(upsc(&format!("ups@{nut}"), "ups.status"), "OL");
    assert_eq!(upsc(&format!("ups@{nut}"), "device.mfr"), "APC");
    // upscmd -l: no instant commands (the gateway is the only primary).
    let cmds = Command::new("upscmd")
        .args(["-l", &format!("ups-main@{nut}")])
        .output()
        .expect("upscmd runs");
    let listed = String::from_utf8_lossy(&cmds.stdout);
    assert!(cmds.status.success(), "{cmds:?}");
    assert!(
        listed.contains("Instant commands supported on UPS [ups-main]"),
        "{listed}"
    );
    assert_eq!(listed.trim().lines().count(), 1, "none listed: {listed}");
    let mut upsmon1 = upsmon(
        &dir.join("nut-1"),
        &format!("ups-main@{nut} upsmon1 pass1word"),
        &down1,
    );
    let mut upsmon2 = upsmon(
        &dir.join("nut-2"),
        &format!("ups-tier2@{nut} upsmon2 pass2word"),
        &down2,
    );
    // Both upsmon logged in before the outage.
    const CLIENTS: &str = "trapgate_nut_clients ";
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut page = scrape(&metrics);
    while !page.contains("trapgate_nut_clients 2") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        page = scrape(&metrics);
    }
    let logged: Vec<&str> = page.lines().filter(|l| l.starts_with(CLIENTS)).collect();
    assert_eq!(logged, ["trapgate_nut_clients 2"], "both upsmon logged in");
    assert!(!page.contains("trapgate_nut_lines_total 0\n"), "{page}");
    let trap = |specific: &str| {
        let sent = Command::new("snmptrap")
            .args([
                "-M",
                "/dev/null",
                "-v1",
                "-c",
                "public",
                "--clientaddr=127.0.0.5",
            ])
            .arg(format!("udp:{traps}"))
            .args(["1.3.6.1.4.1.318", "127.0.0.5", "6", specific, "0"])
            .output()
            .expect("snmptrap runs");
        assert!(sent.status.success(), "{sent:?}");
    };
    trap("5");
    // Tier 2's grace: its upsmon reads FSD, shuts down and logs out (acknowledged);
    // the NAS is shown FSD; the tier-1 upsmon still on battery, and running.
    expect_line(&out, &["\"decision\":\"Acknowledged\"", "srv-2"]);
    assert!(appears(&down2, 10), "the tier-2 upsmon ran its SHUTDOWNCMD");
    assert_eq!(upsc(&format!("ups@{nut}"), "ups.status"), "FSD OB LB");
    assert_eq!(upsc(&format!("ups-main@{nut}"), "ups.status"), "OB");
    assert!(!down1.exists(), "the tier-1 upsmon keeps running on OB");
    // Low battery takes the rest: the tier-1 upsmon sees FSD, shuts down and logs out.
    trap("7");
    expect_line(&out, &["\"decision\":\"Acknowledged\"", "srv-1"]);
    assert!(appears(&down1, 10), "the tier-1 upsmon ran its SHUTDOWNCMD");
    for u in [&mut upsmon1, &mut upsmon2] {
        let _ = u.kill();
        let _ = u.wait();
    }
    let _ = gw.stop();
}

#[test]
fn apcupsd_as_a_network_client_shuts_down_on_the_status_trapgate_shows_it() {
    // Installed, or unpacked beside nut-client (the two packages conflict): .ci/run
    // unpacks it into /opt/apcupsd.
    let find = |name: &str| {
        ["/usr/sbin", "/sbin", "/opt/apcupsd/sbin"]
            .into_iter()
            .map(|d| format!("{d}/{name}"))
            .find(|p| Path::new(p).exists())
    };
    let (Some(apcupsd), Some(apcaccess)) = (find("apcupsd"), find("apcaccess")) else {
        trapgate::testing::skip(
            "apcupsd is not installed (apt-get install apcupsd, or unpack it into /opt/apcupsd as bash .ci/run does)",
        );
        return;
    };
    let (apcupsd, apcaccess) = (apcupsd.as_str(), apcaccess.as_str());
    let port = free_port();
    let site = format!(
        r#"[gateway]
listen = ["127.0.0.1:0"]
agent = "127.0.0.1:0"
nis = "127.0.0.1:{port}"

[policy]
grace = {{ 1 = "10m", 2 = "3s" }}
shutdown_below_charge = 30
shutdown_below_runtime = "5m"
confirm_by_poll = false

[[ups]]
name = "ups-main"
address = "127.0.0.5"
vendor = "apc"
outlet_off_delay = "3m"

[[recorder]]
name = "old-linux"
address = "127.0.0.1"
ups = "ups-main"
tier = 2
shutdown_time = "60s"
kind = "apcupsd"
"#
    );
    let file = site_file("apcupsd", &site);
    let dir = file.parent().expect("dir").join("apc");
    std::fs::create_dir_all(&dir).expect("apc dir");
    let down = dir.join("old-linux-down");
    let _ = std::fs::remove_file(&down);
    let script = dir.join("apccontrol");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncase \"$1\" in\n  doshutdown) echo down > {} ;;\nesac\nexit 0\n",
            down.display()
        ),
    )
    .expect("apccontrol");
    let _ = Command::new("chmod").arg("755").arg(&script).status();
    let d = dir.display();
    std::fs::write(
        dir.join("apcupsd.conf"),
        format!(
            "## apcupsd.conf v1.1 ##\nUPSNAME trapgate\nUPSCABLE ether\nUPSTYPE net\nDEVICE 127.0.0.1:{port}\nPOLLTIME 1\nLOCKFILE {d}\nSCRIPTDIR {d}\nPWRFAILDIR {d}\nNOLOGINDIR {d}\nONBATTERYDELAY 0\nBATTERYLEVEL 5\nMINUTES 3\nTIMEOUT 0\nNETSERVER off\nEVENTSFILE {d}/events\n"
        ),
    )
    .expect("apcupsd.conf");
    let (mut gw, traps, _) = in_process_with_http(&file);
    let out = std::mem::replace(&mut gw.out, std::sync::mpsc::channel().1);
    let traps = traps.to_string();
    let status = || {
        let o = Command::new(apcaccess)
            .args(["-h", &format!("127.0.0.1:{port}"), "-p", "STATUS"])
            .output()
            .expect("apcaccess runs");
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while status() != "ONLINE" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(status(), "ONLINE");
    let mut daemon = Command::new(apcupsd)
        .args(["-b", "-f"])
        .arg(dir.join("apcupsd.conf"))
        .arg("-P")
        .arg(dir.join("pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("apcupsd starts");
    let sent = Command::new("snmptrap")
        .args([
            "-M",
            "/dev/null",
            "-v1",
            "-c",
            "public",
            "--clientaddr=127.0.0.5",
        ])
        .arg(format!("udp:{traps}"))
        .args(["1.3.6.1.4.1.318", "127.0.0.5", "6", "5", "0"])
        .output()
        .expect("snmptrap runs");
    assert!(sent.status.success(), "{sent:?}");
    expect_line(&out, &["\"decision\":\"ShutdownRecorder\"", "old-linux"]);
    assert_eq!(status(), "ONBATT LOWBATT");
    // What apcupsd fetched is all it says: Presented, then taken as its acknowledgement.
    expect_line(&out, &["\"action\":\"Presented\"", "old-linux"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !down.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = daemon.kill();
    let _ = daemon.wait();
    let _ = gw.stop();
    assert!(down.exists(), "apcupsd ran its doshutdown");
}

/// Raises this test process's open-file limit to its hard limit; returns it.
fn raise_files() -> u64 {
    // SAFETY: getrlimit/setrlimit with a valid resource and a pointer to a local struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        lim.rlim_cur = lim.rlim_max;
        let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur as u64
    }
}

/// The value of `name` (a whole line's prefix) on a `/metrics` page.
fn metric(page: &str, name: &str) -> u64 {
    page.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// `/metrics`, scraped until `ok` says it shows what is awaited, or 10 s.
fn scrape_until(metrics: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let page = scrape(metrics);
        if ok(&page) || Instant::now() > deadline {
            return page;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An attacker on the site's network floods the NUT server from a NUT recorder's own
/// address (127.0.0.1 here): 10,050 connections that say nothing, a 1 MB line, and 4,000 requests in
/// one write. The address holds its share of connections (16) and its oldest are
/// closed as new ones come, the long line's connection is closed at 512 bytes, every
/// pipelined request is answered, and a low-battery trap is still decided and its
/// order sent.
#[test]
fn a_connection_and_line_flood_is_bounded_and_a_trap_is_still_decided() {
    use std::io::{BufRead, Read, Write};
    let files = raise_files();
    if files < 10_600 {
        trapgate::testing::skip(&format!(
            "this process may open {files} files, the flood needs 10,600 (ulimit -Hn)"
        ));
        return;
    }
    let port = free_port();
    let nvr = std::net::UdpSocket::bind("127.0.0.18:0").expect("the recorder's socket");
    let site = format!(
        r#"[gateway]
listen = ["127.0.0.1:0"]
agent = "127.0.0.1:0"
nut = "127.0.0.1:{port}"

[policy]
grace = {{ 1 = "10m" }}
shutdown_below_charge = 30
shutdown_below_runtime = "5m"
confirm_by_poll = false

[[ups]]
name = "ups-main"
address = "127.0.0.17"
vendor = "apc"
outlet_off_delay = "3m"

[[recorder]]
name = "nvr-1"
address = "127.0.0.18"
port = {}
ups = "ups-main"
tier = 1
shutdown_time = "60s"

[[recorder]]
name = "nas-1"
address = "127.0.0.1"
ups = "ups-main"
tier = 1
shutdown_time = "60s"
kind = "nut"
nut_user = "monuser"
nut_password = "secret"
"#,
        nvr.local_addr().expect("addr").port()
    );
    let file = site_file("nut-flood", &site);
    let (gw, traps, http) = in_process_with_http(&file);
    let metrics = http.to_string();
    let nut: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    // The NAS is at 127.0.0.1: connections from it need no bind (a bind to port 0 per
    // connection searches the ports in use, and 10,000 of them exhaust one address's).
    let from_nas = || {
        let s =
            std::net::TcpStream::connect_timeout(&nut, Duration::from_secs(10)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        // Closed with a reset, not left in TIME-WAIT: 10,000 of those a run would take
        // the loopback's ephemeral ports from the next one.
        socket2::SockRef::from(&s)
            .set_linger(Some(Duration::ZERO))
            .expect("linger");
        s
    };
    // 4,000 requests in one write (92 KB, past what one turn reads of a connection):
    // every one answered.
    let mut burst = from_nas();
    let reader = burst.try_clone().expect("clone");
    let answers = std::thread::spawn(move || {
        let mut r = std::io::BufReader::new(reader);
        let mut n = 0;
        let mut line = String::new();
        while n < 4_000 {
            line.clear();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            if line.starts_with("VAR ups-main ups.status") {
                n += 1;
            }
        }
        n
    });
    burst
        .write_all(&b"GET VAR ups-main ups.status\n".repeat(4_000))
        .expect("write the burst");
    assert_eq!(
        answers.join().expect("reader"),
        4_000,
        "every pipelined request answered"
    );
    drop(burst);
    // A 1 MB line: the connection is closed at the protocol's limit.
    const TOO_LONG: &str = "trapgate_nut_lines_too_long_total";
    let mut long = from_nas();
    let _ = long.write_all(&vec![b'A'; 1 << 20]);
    let mut rest = Vec::new();
    let _ = long.read_to_end(&mut rest);
    assert!(
        rest.len() < 1024,
        "closed with at most an error line, not an answer per byte: {} bytes",
        rest.len()
    );
    drop(long);
    // 200 more, each reset by its client as soon as the gateway closes it: no slot is
    // left taken by a connection whose goodbye could not be written.
    for _ in 0..200 {
        let mut s = from_nas();
        let _ = s.write_all(&vec![b'A'; 64 * 1024]);
        // Its reset once the gateway has closed it: a reset before then could take the
        // line with it before it is read (a race of the test's, not the gateway's).
        let _ = s.read_to_end(&mut Vec::new());
    }
    const OPEN: &str = "trapgate_tcp_connections{server=\"nut\"}";
    let page = scrape_until(&metrics, |p| {
        p.contains(OPEN) && metric(p, OPEN) == 0 && metric(p, TOO_LONG) == 201
    });
    assert_eq!(
        metric(&page, OPEN),
        0,
        "connections left open after the long lines"
    );
    assert_eq!(metric(&page, TOO_LONG), 201, "every long line counted");
    // 10,050 idle connections from the NAS's address: it holds its share (16) at most,
    // its oldest closed as each new one comes; nobody else's slot is taken.
    let idle: Vec<std::net::TcpStream> = (0..10_050).map(|_| from_nas()).collect();
    const EVICTED: &str = "trapgate_tcp_connections_evicted_total{server=\"nut\"}";
    let page = scrape_until(&metrics, |p| metric(p, OPEN) + metric(p, EVICTED) == 10_050);
    let (open, evicted) = (metric(&page, OPEN), metric(&page, EVICTED));
    assert_eq!(open + evicted, 10_050, "each connection held or evicted");
    assert_eq!(open, 16, "one address holds its share, no more");
    // The oldest were closed by the gateway: they read the end; the newest are held.
    let closed = |s: &std::net::TcpStream| {
        let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
        match (&*s).read(&mut [0u8; 16]) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    };
    assert!(idle.iter().take(100).all(closed), "the oldest closed");
    assert!(!idle.iter().rev().take(16).any(closed), "the newest held");
    // With all of that held open, a low-battery trap is decided and its order sent.
    let ups = std::net::UdpSocket::bind("127.0.0.17:0").expect("the UPS's address");
    ups.send_to(&hex(SEED_TRAP), traps).expect("send the trap");
    expect_line(&gw.out, &["\"decision\":\"ShutdownRecorder\"", "nvr-1"]);
    nvr.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut buf = [0u8; 1500];
    let (n, _) = nvr
        .recv_from(&mut buf)
        .expect("the order reaches the recorder");
    assert!(n > 0 && buf[0] == 0x30, "an SNMP message");
    drop(idle);
    gw.stop();
}
