//! Recorders that are Network UPS Tools clients, on loopback: NUT's own `upsc` and
//! `upsmon` (Debian's nut-client 2.8, a secondary with a SHUTDOWNCMD that writes a file)
//! against `trapgate run`'s NUT server. A tier-2 client sees FSD at its grace while the
//! tier-1 upsmon still sees OB; low battery takes the rest; upsmon shuts down, logs out
//! and is Acknowledged. Skips, saying so, when nut-client is missing (`bash .ci/run`
//! installs it).

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
        eprintln!(
            "skipped: NUT's upsc and upsmon are not installed (apt-get install nut-client, or bash .ci/run)"
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

#[test]
fn upsmon_and_a_synology_style_client_are_staged_by_tier_and_upsmon_acknowledges() {
    if !have_nut() {
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

# A Linux host running upsmon as a secondary, behind the same address.
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
    let nut_dir = dir.join("nut");
    std::fs::create_dir_all(&nut_dir).expect("nut dir");
    let down = dir.join("srv-1-down");
    let _ = std::fs::remove_file(&down);
    std::fs::write(nut_dir.join("nut.conf"), "MODE=netclient\n").expect("nut.conf");
    let conf = nut_dir.join("upsmon.conf");
    std::fs::write(
        &conf,
        format!(
            "MONITOR ups-main@127.0.0.1:{port} 1 upsmon1 pass1word secondary\nMINSUPPLIES 1\nSHUTDOWNCMD \"/bin/sh -c 'echo down > {}'\"\nPOLLFREQ 1\nPOLLFREQALERT 1\nDEADTIME 15\nFINALDELAY 0\nRUN_AS_USER root\n",
            down.display()
        ),
    )
    .expect("upsmon.conf");
    let _ = Command::new("chmod").arg("600").arg(&conf).status();
    let (child, out, err) = start(&[
        "run",
        "--config",
        file.to_str().expect("UTF-8"),
        "--metrics",
        "127.0.0.1:0",
    ]);
    let traps = listening_on(&err).to_string();
    let metrics = expect_line(&err, &["metrics on http://"]);
    let metrics = metrics
        .split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .expect("the metrics address")
        .to_string();
    let nut = format!("127.0.0.1:{port}");
    // Before the outage: on line, as both clients see it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while upsc(&format!("ups@{nut}"), "ups.status") != "OL" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(upsc(&format!("ups@{nut}"), "ups.status"), "OL");
    assert_eq!(upsc(&format!("ups@{nut}"), "device.mfr"), "APC");
    // upsmon keeps its pid in /run/nut whatever its environment says: a second one
    // running on this machine makes this one exit.
    let mut upsmon = Command::new(UPSMON)
        .args(["-F", "-D"])
        .env("NUT_CONFPATH", &nut_dir)
        .env("NUT_STATEPATH", &nut_dir)
        .env("NUT_ALTPIDPATH", &nut_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("upsmon starts");
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
    expect_line(&out, &["\"decision\":\"ShutdownRecorder\"", "nas-2"]);
    // The tier-2 NAS is shown FSD; the tier-1 upsmon still on battery.
    assert_eq!(upsc(&format!("ups@{nut}"), "ups.status"), "FSD OB LB");
    assert_eq!(upsc(&format!("ups-main@{nut}"), "ups.status"), "OB");
    assert!(!down.exists(), "upsmon keeps running on OB");
    // /metrics counts the NUT clients logged in (upsmon) and the lines answered.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut page = scrape(&metrics);
    let counted = |p: &str| {
        p.contains("trapgate_nut_clients 1") && !p.contains("trapgate_nut_lines_total 0\n")
    };
    while !counted(&page) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        page = scrape(&metrics);
    }
    let nut_lines: Vec<&str> = page
        .lines()
        .filter(|l| l.starts_with("trapgate_nut"))
        .collect();
    assert!(page.contains("trapgate_nut_clients 1"), "{nut_lines:?}");
    assert!(!page.contains("trapgate_nut_lines_total 0\n"), "{page}");
    // Low battery takes the rest: upsmon sees FSD, shuts down (its SHUTDOWNCMD) and
    // logs out: its acknowledgement.
    trap("7");
    expect_line(&out, &["\"decision\":\"Acknowledged\"", "srv-1"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !down.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(down.exists(), "upsmon ran its SHUTDOWNCMD");
    let _ = upsmon.kill();
    let _ = upsmon.wait();
    terminate(&child);
}

/// apcupsd as a network client of trapgate's NIS server (UPSTYPE net): on battery, then
/// ordered down at its tier's grace, it sees ONBATT LOWBATT with nothing left and runs
/// its shutdown (apccontrol doshutdown); `apcaccess` reads the same status.
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
        eprintln!(
            "skipped: apcupsd is not installed (apt-get install apcupsd, or unpack it into /opt/apcupsd as bash .ci/run does)"
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
    let (child, out, err) = start(&["run", "--config", file.to_str().expect("UTF-8")]);
    let traps = listening_on(&err).to_string();
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
    terminate(&child);
    assert!(down.exists(), "apcupsd ran its doshutdown");
}
