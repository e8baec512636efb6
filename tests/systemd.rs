//! Running under systemd (`Type=notify`): the notify socket is one this test makes, as
//! systemd makes it for a service. `READY=1` only once the gateway listens, with the
//! site's status; `STATUS=` again when a UPS goes on battery; `WATCHDOG=1` from the
//! decision thread at half the watchdog period; `RELOADING=1` and `READY=1` around a
//! SIGHUP; `STOPPING=1` on SIGTERM. And the unit in `tools/dist` verified by
//! `systemd-analyze verify` (skipped, saying so, where systemd-analyze is missing).

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// The notify messages that came within `wait`, each a datagram of `KEY=VALUE` lines.
fn messages(sock: &UnixDatagram, wait: Duration) -> Vec<String> {
    let until = Instant::now() + wait;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("timeout");
        match sock.recv(&mut buf) {
            Ok(n) => got.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(_) => break,
        }
    }
    got
}

/// The first message with `what` within 10 s, and those before it.
fn until_message(sock: &UnixDatagram, what: &str) -> (String, Vec<String>) {
    let until = Instant::now() + Duration::from_secs(10);
    let mut before = Vec::new();
    let mut buf = [0u8; 4096];
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("timeout");
        let Ok(n) = sock.recv(&mut buf) else { break };
        let m = String::from_utf8_lossy(&buf[..n]).into_owned();
        if m.contains(what) {
            return (m, before);
        }
        before.push(m);
    }
    panic!("no {what:?} within 10 s; got {before:?}");
}

#[test]
fn under_systemd_it_says_ready_status_watchdog_reloading_and_stopping() {
    let site = site_file("systemd", &loopback_site());
    let dir = site.parent().expect("dir").to_path_buf();
    let path = dir.join("notify.sock");
    let _ = std::fs::remove_file(&path);
    let sock = UnixDatagram::bind(&path).expect("the notify socket");
    // A 400 ms watchdog: pinged every 200 ms.
    let (child, out, err) = start_with_env(
        &[
            "run",
            "--config",
            site.to_str().expect("UTF-8"),
            "--listen",
            "127.0.0.1:0",
        ],
        &[
            ("NOTIFY_SOCKET", path.as_os_str()),
            ("WATCHDOG_USEC", "400000".as_ref()),
        ],
    );
    let (ready, before) = until_message(&sock, "READY=1");
    assert!(before.is_empty(), "nothing before READY=1: {before:?}");
    // Ready only once it listens: the listening line is already out.
    let traps = listening_on(&err);
    assert!(
        ready.contains("STATUS=1 UPS on mains, 0 on battery; 2 recorders, 0 told, 0 acknowledged"),
        "{ready}"
    );
    // The watchdog, from the decision thread: about 5 pings a second.
    let pings = messages(&sock, Duration::from_millis(1100))
        .iter()
        .filter(|m| m.contains("WATCHDOG=1"))
        .count();
    assert!((3..=8).contains(&pings), "{pings} pings in 1.1 s");
    // A UPS on battery: the status says so (within its second).
    let ups = std::net::UdpSocket::bind("127.0.0.1:0").expect("the UPS");
    let on_battery = trapgate::wire::encode::to_vec(&trapgate::wire::Message::trap_v1(
        b"public",
        trapgate::wire::oid::oid("1.3.6.1.4.1.318").as_oid(),
        [127, 0, 0, 1],
        5,
        100,
        &[],
    ));
    ups.send_to(&on_battery, traps).expect("send");
    expect_line(&out, &["\"kind\":\"on_battery\""]);
    let (status, _) = until_message(&sock, "STATUS=");
    assert!(
        status.contains("STATUS=0 UPS on mains, 1 on battery; 2 recorders, 0 told"),
        "{status}"
    );
    // SIGHUP: reloading, then ready again.
    signal(&child, libc::SIGHUP);
    let (reloading, _) = until_message(&sock, "RELOADING=1");
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    let (again, _) = until_message(&sock, "READY=1");
    assert!(again.contains("1 on battery"), "{again}");
    // SIGTERM: stopping.
    terminate(&child);
    until_message(&sock, "STOPPING=1");
    let mut child = child;
    assert!(child.wait().expect("exit").success());
}

/// The unit file, with its binary where this build put it, passes `systemd-analyze
/// verify`.
#[test]
fn the_unit_verifies() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        trapgate::testing::skip("systemd-analyze is not installed (apt-get install systemd)");
        return;
    }
    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/dist/trapgate.service"),
    )
    .expect("the unit");
    let dir = site_file("unit", "").parent().expect("dir").to_path_buf();
    let path = dir.join("trapgate.service");
    std::fs::write(
        &path,
        unit.replace("/usr/bin/trapgate", env!("CARGO_BIN_EXE_trapgate")),
    )
    .expect("write the unit");
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("systemd-analyze runs");
    let said =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    // Only what concerns the unit itself: the host's other units are not ours.
    let ours: Vec<&str> = said
        .lines()
        .filter(|l| l.contains("trapgate.service"))
        .collect();
    assert!(out.status.success() && ours.is_empty(), "{said}");
}
