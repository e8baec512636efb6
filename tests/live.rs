//! The live gateway as a site engineer runs it, on loopback: `trapgate run` hears a
//! UPS's low-battery trap and decides; it stops cleanly on SIGTERM with a summary; a busy
//! port and a broken site file are clear errors.

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The seed's APC lowBattery trap, as in captures/seed-trace.pcap.
const SEED_TRAP: &str = "306302010004067075626c6963a45606072b06010401823e4004c0a83dfa02010602010743037a1200303a3038060b2b06010401823e0203030004295550533a204c6f7720626174746572792e20412073687574646f776e20697320696d6d696e656e742e";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

fn site_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("trapgate-live-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("site.toml");
    std::fs::write(&file, text).expect("write site");
    file
}

/// The seed's site with its UPS on loopback, acting on traps without a confirming poll.
fn loopback_site() -> String {
    trapgate::config::DEFAULT_SITE
        .replace("192.168.61.250", "127.0.0.1")
        .replace("confirm_by_poll = true", "confirm_by_poll = false")
}

/// Lines of a child's stream, delivered through a channel so reads can time out.
fn lines(stream: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn start(args: &[&str]) -> (Child, mpsc::Receiver<String>, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_trapgate"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("trapgate starts");
    let out = lines(child.stdout.take().expect("stdout"));
    let err = lines(child.stderr.take().expect("stderr"));
    (child, out, err)
}

/// GET /metrics, as a scraper would.
fn scrape(addr: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n");
    let mut page = String::new();
    let _ = s.read_to_string(&mut page);
    page
}

/// The next `n` ShutdownRecorder lines on the gateway's stdout (10 s for each at most).
fn orders(out: &mpsc::Receiver<String>, n: usize) -> Vec<String> {
    let mut told = Vec::new();
    while told.len() < n {
        let line = out
            .recv_timeout(Duration::from_secs(10))
            .expect("a decision within 10 s");
        if line.contains("\"decision\":\"ShutdownRecorder\"") {
            told.push(line);
        }
    }
    told
}

/// The address `trapgate run` says it listens on (its first line on stderr).
fn listening_on(err: &mpsc::Receiver<String>) -> std::net::SocketAddr {
    let line = err
        .recv_timeout(Duration::from_secs(10))
        .expect("trapgate says where it listens");
    line.split("listening on ")
        .nth(1)
        .and_then(|r| r.split([' ', ',']).next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
}

fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: signalling our own child process, whose pid we hold.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(child.id() as libc::pid_t, sig);
    }
}

fn terminate(child: &Child) {
    signal(child, libc::SIGTERM);
}

#[test]
fn hears_a_low_battery_trap_decides_and_stops_cleanly() {
    let site = site_file("hear", &loopback_site());
    let (mut child, out, err) = start(&[
        "run",
        "--config",
        site.to_str().expect("UTF-8"),
        "--listen",
        "127.0.0.1:0",
        "--metrics",
        "127.0.0.1:0",
    ]);
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
    let ups = UdpSocket::bind("127.0.0.1:0").expect("bind");
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
        if page.contains("trapgate_datagrams_total 1") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(page.contains("trapgate_datagrams_total 1"), "{page}");
    assert!(
        page.contains("trapgate_events_total{event=\"LowBattery\"} 1"),
        "{page}"
    );
    assert!(
        page.contains("trapgate_decision_latency_seconds_count{event=\"LowBattery\"} 1"),
        "{page}"
    );
    terminate(&child);
    let status = child.wait().expect("trapgate exits");
    assert!(status.success(), "{status:?}");
    let summary: Vec<String> = err.iter().collect();
    let summary = summary.join("\n");
    assert!(summary.contains("trap 1"), "{summary}");
    assert!(summary.contains("stopped by signal 15"), "{summary}");
    assert!(summary.contains("latency LowBattery"), "{summary}");
}

#[test]
fn a_busy_port_and_a_broken_site_are_clear_errors() {
    let taken = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_trapgate"))
        .args(["run", "--listen", &addr])
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
fn replay_send_plays_the_seed_trace_into_the_live_gateway() {
    let site = site_file("send", &loopback_site());
    let (mut child, out, err) = start(&[
        "run",
        "--config",
        site.to_str().expect("UTF-8"),
        "--listen",
        "127.0.0.1:0",
    ]);
    let addr = listening_on(&err).to_string();
    let capture = concat!(env!("CARGO_MANIFEST_DIR"), "/captures/seed-trace.pcap");
    let sent = Command::new(env!("CARGO_BIN_EXE_trapgate"))
        .args(["replay", capture, "--send", &addr, "--speed", "0"])
        .output()
        .expect("replay --send runs");
    let said = String::from_utf8_lossy(&sent.stdout);
    assert!(said.contains("sent 10 SNMP datagrams"), "{said}");
    orders(&out, 2);
    terminate(&child);
    assert!(child.wait().expect("exit").success());
    let summary: String = err.iter().collect::<Vec<_>>().join("\n");
    assert!(summary.contains("-- 10 datagrams"), "{summary}");
    assert!(
        summary.contains("events: LowBattery 2, RecorderAck 1"),
        "{summary}"
    );
}

#[test]
fn sighup_reloads_the_site_and_a_broken_file_keeps_the_running_one() {
    let site = site_file("hup", &loopback_site());
    let (mut child, out, err) = start(&[
        "run",
        "--config",
        site.to_str().expect("UTF-8"),
        "--listen",
        "127.0.0.1:0",
    ]);
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
        + "\n[[recorder]]\nname = \"nvr-new\"\naddress = \"192.168.61.245\"\nups = \"ups-main\"\ntier = 1\nshutdown_time = \"60s\"\n";
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
