//! The live gateway as a site engineer runs it, on loopback: `trapgate run` hears a
//! UPS's low-battery trap and decides; it stops cleanly on SIGTERM with a summary; a busy
//! port and a broken site file are clear errors.

use std::net::UdpSocket;
use std::process::Command;
use std::time::Duration;

mod common;
use common::*;

/// The seed's trap with the community "public" changed to "publiC" (same length).
trait OtherCommunity {
    fn replace_community(self) -> Vec<u8>;
}

impl OtherCommunity for Vec<u8> {
    fn replace_community(mut self) -> Vec<u8> {
        let at = self
            .windows(6)
            .position(|w| w == b"public")
            .expect("the community");
        self[at + 5] = b'C';
        self
    }
}

#[test]
fn hears_a_low_battery_trap_decides_and_stops_cleanly() {
    let (_, mut child, out, err) = run_loopback("hear", &["--metrics", "127.0.0.1:0"]);
    let port = listening_on(&err).port();
    let metrics_line = err
        .recv_timeout(Duration::from_secs(10))
        .expect("and where its metrics are");
    let metrics_addr = metrics_line
        .split("http://")
        .nth(1)
        .and_then(|r| r.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("no metrics address in {metrics_line:?}"))
        .to_string();
    // And where the status page is: the same endpoint.
    expect_line(
        &err,
        &[&format!(
            "status page on http://{metrics_addr}/ (and /status.json)"
        )],
    );
    let ups = UdpSocket::bind("127.0.0.1:0").expect("bind");
    // The seed's trap with another community first: refused, counted by reason.
    let wrong = hex(SEED_TRAP).replace_community();
    ups.send_to(&wrong, ("127.0.0.1", port)).expect("send");
    ups.send_to(&hex(SEED_TRAP), ("127.0.0.1", port))
        .expect("send");
    let told = orders(&out, 2);
    assert!(
        told[0].contains("\"recorder\":\"nvr-244\"") && told[0].contains("\"rule\":\"lowBattery\""),
        "{told:?}"
    );
    assert!(told[1].contains("\"recorder\":\"nvr-251\""), "{told:?}");
    // The metrics endpoint shows the trap and its latency within a couple of seconds.
    let mut page = String::new();
    for _ in 0..50 {
        page = scrape(&metrics_addr);
        if page.contains("trapgate_datagrams_total 2") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(page.contains("trapgate_datagrams_total 2"), "{page}");
    assert!(
        page.contains("trapgate_events_total{event=\"LowBattery\"} 2"),
        "{page}"
    );
    assert!(
        page.contains("trapgate_decision_latency_seconds_count{event=\"LowBattery\"} 1"),
        "{page}"
    );
    for _ in 0..50 {
        if page.contains("trapgate_refused_total{reason=\"wrong_community\"} 1") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        page = scrape(&metrics_addr);
    }
    assert!(
        page.contains("trapgate_refused_total{reason=\"wrong_community\"} 1"),
        "{page}"
    );
    terminate(&child);
    let status = child.wait().expect("trapgate exits");
    assert!(status.success(), "{status:?}");
    let summary: Vec<String> = err.iter().collect();
    let summary = summary.join("\n");
    assert!(summary.contains("trap 2"), "{summary}");
    assert!(
        summary.contains("refused: 1 (wrong_community 1)"),
        "{summary}"
    );
    assert!(summary.contains("stopped by signal 15"), "{summary}");
    assert!(summary.contains("latency LowBattery"), "{summary}");
}

#[test]
fn a_busy_port_a_broken_site_and_no_site_are_clear_errors() {
    // No site file: `run` does not run the embedded seed site (it would poll the seed's
    // UPS address at once); it says what it needs.
    let out = Command::new(env!("CARGO_BIN_EXE_trapgate"))
        .args(["run", "--listen", "127.0.0.1:0"])
        .output()
        .expect("trapgate runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--config <FILE>"), "{err}");
    let help = Command::new(env!("CARGO_BIN_EXE_trapgate"))
        .args(["run", "--help"])
        .output()
        .expect("trapgate runs");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("A site file is required"), "{help}");

    let taken = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let site = site_file("busy", &loopback_site());
    let out = Command::new(env!("CARGO_BIN_EXE_trapgate"))
        .args([
            "run",
            "--config",
            site.to_str().expect("UTF-8"),
            "--listen",
            &addr,
        ])
        .output()
        .expect("trapgate runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
    assert!(err.contains("Address already in use"), "{err}");

    let broken = site_file("broken", "[policy]\ngrace = { 1 = \"1m\" }\n");
    let out = Command::new(env!("CARGO_BIN_EXE_trapgate"))
        .args([
            "run",
            "--config",
            broken.to_str().expect("UTF-8"),
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .expect("trapgate runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("missing key `shutdown_below_charge`"), "{err}");
}

#[test]
fn replay_send_plays_the_seed_trace_into_the_live_gateway_from_the_sources_it_maps() {
    let gw = InProcess::on_loopback(&loopback_site());
    let addr = gw.traps.to_string();
    let capture = concat!(env!("CARGO_MANIFEST_DIR"), "/captures/seed-trace.pcap");
    // The loopback site's UPS is 127.0.0.1 and nvr-251 127.0.0.251: the capture's
    // traps are sent from there, and nvr-251's acknowledgement is believed.
    let sent = Command::new(env!("CARGO_BIN_EXE_trapgate"))
        .args([
            "replay",
            capture,
            "--send",
            &addr,
            "--speed",
            "0",
            "--source",
            "192.168.61.250=127.0.0.1",
            "--source",
            "192.168.61.251=127.0.0.251",
        ])
        .output()
        .expect("replay --send runs");
    let said = String::from_utf8_lossy(&sent.stdout);
    assert!(said.contains("sent 3 SNMP notifications"), "{said}");
    orders(&gw.out, 2);
    expect_line(&gw.out, &["\"decision\":\"Acknowledged\"", "nvr-251"]);
    let summary = gw.stop();
    assert!(summary.contains("-- 3 datagrams"), "{summary}");
    assert!(
        summary.contains("events: LowBattery 2, RecorderAck 1"),
        "{summary}"
    );
    assert!(summary.contains("refused: 0"), "{summary}");

    // A source that is no address of this machine is named before anything is sent.
    let bad = Command::new(env!("CARGO_BIN_EXE_trapgate"))
        .args(["replay", capture, "--send", &addr, "--from", "192.0.2.1"])
        .output()
        .expect("replay --send runs");
    let e = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{e}");
    assert!(e.contains("cannot send from 192.0.2.1"), "{e}");
}

#[test]
fn sighup_reloads_the_site_and_a_broken_file_keeps_the_running_one() {
    let (site, mut child, out, err) = run_loopback("hup", &[]);
    let port = listening_on(&err).port();
    // A broken file first: refused, the running site stays.
    std::fs::write(&site, "[policy]\n").expect("write");
    signal(&child, libc::SIGHUP);
    let said = err
        .recv_timeout(Duration::from_secs(10))
        .expect("a word on the reload");
    assert!(said.contains("keeping the running site"), "{said}");
    // Then a good one with a third recorder.
    let more = loopback_site()
        + "\n[[recorder]]\nname = \"nvr-new\"\naddress = \"127.0.0.245\"\nups = \"ups-main\"\ntier = 1\nshutdown_time = \"60s\"\n";
    std::fs::write(&site, more).expect("write");
    signal(&child, libc::SIGHUP);
    // The broken file's mistakes come first, one a line; then the reload.
    let mut said = String::new();
    for _ in 0..20 {
        said = err
            .recv_timeout(Duration::from_secs(10))
            .expect("a word on the reload");
        if said.contains("site reloaded") {
            break;
        }
    }
    assert!(
        said.contains("site reloaded (1 UPS, 3 recorders)"),
        "{said}"
    );
    let ups = UdpSocket::bind("127.0.0.1:0").expect("bind");
    ups.send_to(&hex(SEED_TRAP), ("127.0.0.1", port))
        .expect("send");
    let told = orders(&out, 3);
    assert!(
        told.iter().any(|l| l.contains("\"recorder\":\"nvr-new\"")),
        "{told:?}"
    );
    terminate(&child);
    assert!(child.wait().expect("exit").success());
}

/// The address of fan-out recorder `i`.
fn fan_out_address(i: usize) -> String {
    format!("127.14.{}.{}", i / 250, i % 250 + 1)
}

/// A site of one UPS at 127.13.0.1 with a recorder at 127.14.x.y on each of `ports`.
fn fan_out_site(ports: &[u16]) -> String {
    let mut t = String::from(
        "[gateway]\nlisten = [\"127.0.0.1:0\"]\nagent = \"127.0.0.1:0\"\ncommunity = \"public\"\n\n\
         [policy]\ngrace = { 1 = \"10m\" }\nshutdown_below_charge = 30\nshutdown_below_runtime = \"5m\"\n\
         confirm_by_poll = false\nack_timeout = \"10m\"\n\n\
         [[ups]]\nname = \"ups-main\"\naddress = \"127.13.0.1\"\nvendor = \"apc\"\npoll_interval = \"60s\"\noutlet_off_delay = \"5m\"\n\n",
    );
    for (i, port) in ports.iter().enumerate() {
        t.push_str(&format!(
            "[[recorder]]\nname = \"nvr-{i}\"\naddress = \"{}\"\nport = {port}\nups = \"ups-main\"\ntier = 1\nshutdown_time = \"90s\"\n\n",
            fan_out_address(i)
        ));
    }
    t
}

#[test]
fn a_low_battery_trap_tells_hundreds_of_recorders_once_each_after_journaling_every_decision() {
    use trapgate::engine::record::{Action, Decided, Record};
    const N: usize = 300;
    // Every recorder is its own socket at its own loopback address: 300 orders in one
    // burst would overflow one socket's receive buffer on a loaded machine.
    let recorders: Vec<UdpSocket> = (0..N)
        .map(|i| UdpSocket::bind(format!("{}:0", fan_out_address(i))).expect("a recorder"))
        .collect();
    let ports: Vec<u16> = recorders
        .iter()
        .map(|s| s.local_addr().expect("addr").port())
        .collect();
    let site = site_file("fan-out", &fan_out_site(&ports));
    let journal = site.with_file_name("journal");
    let _ = std::fs::remove_file(&journal);
    // In this process (the journal read back below).
    let text = std::fs::read_to_string(&site).expect("the site");
    let gw = InProcess::start(&text, Some(journal.clone()));
    let (listen, agent) = (gw.traps, gw.agent);
    let ups = UdpSocket::bind("127.13.0.1:0").expect("the UPS's address");
    ups.send_to(&hex(SEED_TRAP), listen).expect("send");
    // Orders leave from the virtual UPS's socket; each recorder's first datagram from
    // there is its order.
    let mut buf = [0u8; 1500];
    let until = std::time::Instant::now() + Duration::from_secs(30);
    for (i, r) in recorders.iter().enumerate() {
        loop {
            let left = until
                .checked_duration_since(std::time::Instant::now())
                .unwrap_or_else(|| panic!("nvr-{i} told within 30 s"));
            r.set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .expect("timeout");
            match r.recv_from(&mut buf) {
                Ok((n, from)) if from == agent => {
                    assert!(n > 0 && buf[0] == 0x30, "an SNMP message");
                    break;
                }
                Ok(_) => {}
                Err(e) => panic!("nvr-{i} told within 30 s: {e}"),
            }
        }
    }
    // Nothing more: each recorder is told once (a re-send would wait ack_timeout, 10 min,
    // however slowly a loaded machine sends the 300).
    std::thread::sleep(Duration::from_millis(500));
    for (i, r) in recorders.iter().enumerate() {
        r.set_nonblocking(true).expect("nonblocking");
        if let Ok((_, from)) = r.recv_from(&mut buf) {
            assert_ne!(from, agent, "nvr-{i} told twice");
        }
    }
    let summary = gw.stop();
    // The start's record (the site's whole text) was made durable at the start: the
    // sync the orders waited for held the fan-out's decisions alone.
    let bytes_after = |what: &str| -> u64 {
        let rest = summary
            .split(what)
            .nth(1)
            .unwrap_or_else(|| panic!("{what:?} in the stop summary: {summary}"));
        rest.split_whitespace().next().unwrap().parse().unwrap()
    };
    let (largest, before_orders) = (
        bytes_after("; the largest "),
        bytes_after("before orders left, the largest "),
    );
    assert!(
        largest >= text.len() as u64,
        "the start's sync holds the site ({} bytes): {summary}",
        text.len()
    );
    assert!(
        before_orders > 0 && before_orders < text.len() as u64 / 4,
        "the orders waited for their decisions' sync alone, not the site's text ({} bytes): {summary}",
        text.len()
    );
    let mut records = Vec::new();
    trapgate::daemon::journal::read(&journal, |_, r| records.push(r)).expect("the journal");
    let decided: Vec<usize> = (0..records.len())
        .filter(|&i| {
            matches!(
                records[i],
                Record::Decision(Decided::ShutdownRecorder { .. })
            )
        })
        .collect();
    let sent: Vec<(usize, String)> = records
        .iter()
        .enumerate()
        .filter_map(|(i, r)| match r {
            Record::Action(Action::Sent {
                recorder, attempt, ..
            }) => {
                assert_eq!(*attempt, 1);
                Some((i, recorder.to_string()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(decided.len(), N, "every recorder decided once");
    assert_eq!(sent.len(), N, "every recorder sent once");
    let mut names: Vec<&str> = sent.iter().map(|(_, n)| n.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), N, "each recorder its own order");
    // The decisions were journaled (and fsync'd) before any order left.
    let last_decided = decided.last().copied().unwrap_or(0);
    assert!(
        sent.iter().all(|(i, _)| *i > last_decided),
        "a Sent journaled before the last decision"
    );
}

/// A gateway killed (SIGKILL) as the first order of a fan-out to 2,000 recorders
/// arrives has journaled the decision behind every order that left: a restart knows
/// whom it told.
#[test]
fn a_fan_out_killed_as_its_first_orders_arrive_has_journaled_every_order_that_left() {
    use std::os::fd::AsRawFd;
    use trapgate::engine::record::{Decided, Record};
    const N: usize = 2000;
    // One socket plays every recorder (each at its own 127.14.x.y, one port), with room
    // for all of their orders.
    let sink = trapgate::daemon::socket::bind_udp("0.0.0.0:0".parse().unwrap()).expect("sink");
    let _ = trapgate::daemon::socket::set_int_option(
        sink.as_raw_fd(),
        libc::SOL_SOCKET,
        libc::SO_RCVBUFFORCE,
        64 * 1024 * 1024,
    );
    let port = sink.local_addr().expect("addr").port();
    let site = site_file("fan-out-killed", &fan_out_site(&vec![port; N]));
    let journal = site.with_file_name("journal");
    let _ = std::fs::remove_file(&journal);
    let (child, _out, err) = start(&[
        "run",
        "--config",
        site.to_str().expect("UTF-8"),
        "--journal",
        journal.to_str().expect("UTF-8"),
    ]);
    let traps = listening_on(&err);
    std::thread::sleep(Duration::from_millis(300));
    let ups = UdpSocket::bind("127.13.0.1:0").expect("the UPS's address");
    ups.send_to(&hex(SEED_TRAP), traps).expect("send");
    let mut buf = [0u8; 1500];
    let mut received = 0usize;
    let until = std::time::Instant::now() + Duration::from_secs(30);
    let mut killed_at = None;
    loop {
        match sink.recv_from(&mut buf) {
            Ok(_) => {
                received += 1;
                if killed_at.is_none() {
                    signal(&child, libc::SIGKILL);
                    killed_at = Some(std::time::Instant::now());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                // What left before the kill is in the buffer within this.
                if killed_at.is_some_and(|k| k.elapsed() > Duration::from_millis(500)) {
                    break;
                }
                assert!(std::time::Instant::now() < until, "no order within 30 s");
                std::thread::sleep(Duration::from_micros(100));
            }
            Err(e) => panic!("sink: {e}"),
        }
    }
    let mut child = child;
    let _ = child.wait();
    let mut decided = 0usize;
    trapgate::daemon::journal::read(&journal, |_, r| {
        if matches!(r, Record::Decision(Decided::ShutdownRecorder { .. })) {
            decided += 1;
        }
    })
    .expect("the journal");
    eprintln!(
        "killed after the first order: {received} of {N} orders had left, {decided} shutdowns journaled"
    );
    assert!(received >= 1);
    assert!(
        decided >= received,
        "{received} orders left, only {decided} of their decisions are in the journal"
    );
}

#[test]
fn a_gateway_whose_stderr_is_closed_goes_on_deciding_and_stops_cleanly() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let site = site_file("stderr-closed", &loopback_site());
    let mut child = Command::new(env!("CARGO_BIN_EXE_trapgate"))
        .args(["run", "--config", site.to_str().expect("UTF-8")])
        .args(["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("trapgate runs");
    let out = lines(child.stdout.take().expect("stdout"));
    // Its first line, then nobody reads its stderr again: every later write fails.
    let mut err = BufReader::new(child.stderr.take().expect("stderr"));
    let mut first = String::new();
    err.read_line(&mut first).expect("a line");
    let traps = address_in(&first);
    drop(err);
    std::thread::sleep(Duration::from_millis(300));
    let ups = UdpSocket::bind("127.0.0.1:0").expect("the UPS");
    // A forgery (its refusal is said on stderr), then the seed's lowBattery trap.
    let mut forged = hex(SEED_TRAP);
    forged[7..13].copy_from_slice(b"wrong!");
    ups.send_to(&forged, traps).expect("send");
    std::thread::sleep(Duration::from_millis(1500));
    ups.send_to(&hex(SEED_TRAP), traps).expect("send");
    let told = orders(&out, 2);
    assert_eq!(told.len(), 2, "{told:?}");
    assert!(child.try_wait().expect("status").is_none(), "still running");
    terminate(&child);
    let status = child.wait().expect("exit");
    assert!(status.success(), "{status:?}");
}

/// A gateway asks for huge pages: on a kernel that gives them only to memory that asks
/// (`madvise`), `trapgate run` starts again as the same process (its pid, its
/// arguments) with glibc's malloc asking for them; a site's own `GLIBC_TUNABLES` are
/// kept as they are; and a gateway already started again does not start again, even
/// with its tunables gone (as glibc may erase a privileged start's).
#[test]
fn a_gateway_starts_again_on_huge_pages_as_the_same_process_unless_tunables_are_chosen() {
    use trapgate::daemon::hugepages::{HUGE_PAGES, STARTED_AGAIN, TUNABLES, mode_of};
    let mode = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").ok();
    if mode.as_deref().and_then(mode_of) != Some("madvise") {
        trapgate::testing::skip(&format!(
            "huge pages: this kernel's transparent huge pages are {:?}, not given only when asked (madvise): nothing to start again for",
            mode.as_deref().map(str::trim)
        ));
        return;
    }
    let site = site_file("huge-pages", &loopback_site());
    let args = run_on_loopback(&site);
    for (chosen, again, want) in [
        (None, false, Some(HUGE_PAGES)),
        (
            Some("glibc.malloc.hugetlb=0"),
            false,
            Some("glibc.malloc.hugetlb=0"),
        ),
        (None, true, None),
    ] {
        let (mut child, _out, err) = start_configured(&args, |c| {
            match chosen {
                Some(t) => c.env(TUNABLES, t),
                None => c.env_remove(TUNABLES),
            };
            match again {
                true => c.env(STARTED_AGAIN, "huge-pages"),
                false => c.env_remove(STARTED_AGAIN),
            };
        });
        listening_on(&err);
        let tunables: Vec<String> = environ_of(child.id())
            .into_iter()
            .filter(|v| v.starts_with(&format!("{TUNABLES}=")))
            .collect();
        let want: Vec<String> = want
            .map(|w| format!("{TUNABLES}={w}"))
            .into_iter()
            .collect();
        assert_eq!(
            tunables, want,
            "the gateway started with {chosen:?}, started again already: {again}"
        );
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", child.id())).expect("cmdline");
        let argv: Vec<&[u8]> = cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .collect();
        assert_eq!(
            &argv[1..],
            args.map(str::as_bytes),
            "the same arguments, in the same process"
        );
        // What `ps`, `top`, `pgrep trapgate` and the journal's _COMM show: its name, not
        // the `exe` of /proc/self/exe.
        let comm = std::fs::read_to_string(format!("/proc/{}/comm", child.id())).expect("comm");
        assert_eq!(comm.trim_end(), "trapgate", "the process keeps its name");
        terminate(&child);
        let status = child.wait().expect("the gateway stops");
        assert!(status.success(), "{status:?}");
    }
}

/// `run` of `site` on a free loopback port.
fn run_on_loopback(site: &std::path::Path) -> [&str; 5] {
    [
        "run",
        "--config",
        site.to_str().expect("UTF-8"),
        "--listen",
        "127.0.0.1:0",
    ]
}

/// The environment of process `pid`, as it was started.
fn environ_of(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/environ"))
        .expect("environ")
        .split(|b| *b == 0)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

/// A gateway given the capability to bind port 162 without root (`setcap
/// cap_net_bind_service=+ep`, as sites run it) starts, and starts again on huge pages
/// once: glibc may erase the tunables of such a privileged start, which must not make
/// it start again for ever.
#[test]
fn a_gateway_with_file_capabilities_starts_again_once_at_most() {
    use trapgate::daemon::hugepages::{HUGE_PAGES, STARTED_AGAIN, TUNABLES, mode_of};
    let mode = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").ok();
    if mode.as_deref().and_then(mode_of) != Some("madvise") {
        trapgate::testing::skip(
            "file capabilities and huge pages: this kernel does not give huge pages only when asked (madvise)",
        );
        return;
    }
    let site = site_file("setcap", &loopback_site());
    let copy = site.with_file_name("trapgate");
    // The copy is as large as the test build (its debug information): its directory
    // goes when the test ends, whatever the outcome.
    struct Gone(std::path::PathBuf);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _gone = Gone(site.parent().expect("the site's directory").to_path_buf());
    std::fs::copy(env!("CARGO_BIN_EXE_trapgate"), &copy).expect("a copy of trapgate");
    let setcap = which("setcap").map(|s| {
        Command::new(s)
            .args(["cap_net_bind_service=+ep"])
            .arg(&copy)
            .output()
    });
    match setcap {
        Some(Ok(o)) if o.status.success() => {}
        Some(Ok(o)) => {
            trapgate::testing::skip(&format!(
                "file capabilities: setcap refused ({}), not root or a file system without them",
                String::from_utf8_lossy(&o.stderr).trim()
            ));
            return;
        }
        _ => {
            trapgate::testing::skip(
                "file capabilities: no setcap (Debian: apt-get install libcap2-bin)",
            );
            return;
        }
    }
    let args = run_on_loopback(&site);
    let (mut child, _out, err) = start_program(&copy, &args, |c| {
        c.env_remove(TUNABLES).env_remove(STARTED_AGAIN);
    });
    // One that started again for ever would never get this far.
    listening_on(&err);
    let environ = environ_of(child.id());
    assert!(
        environ.contains(&format!("{STARTED_AGAIN}=huge-pages")),
        "started again once: {environ:?}"
    );
    assert!(
        environ.contains(&format!("{TUNABLES}={HUGE_PAGES}")),
        "{environ:?}"
    );
    terminate(&child);
    let status = child.wait().expect("the gateway stops");
    assert!(status.success(), "{status:?}");
}
