//! What the integration tests share: starting `trapgate`, reading its streams with
//! timeouts, site files in a temp directory, the seed's trap.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The seed's APC lowBattery trap, as in captures/seed-trace.pcap.
pub const SEED_TRAP: &str = "306302010004067075626c6963a45606072b06010401823e4004c0a83dfa02010602010743037a1200303a3038060b2b06010401823e0203030004295550533a204c6f7720626174746572792e20412073687574646f776e20697320696d6d696e656e742e";

pub fn hex(s: &str) -> Vec<u8> {
    trapgate::wire::hex::decode(s).expect("hex")
}

pub fn site_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("trapgate-live-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("site.toml");
    std::fs::write(&file, text).expect("write site");
    file
}

/// The seed's site on loopback (its UPS at 127.0.0.1, its recorders at 127.0.0.244
/// and 127.0.0.251: nothing leaves the machine), acting on traps without a confirming
/// poll.
pub fn loopback_site() -> String {
    trapgate::engine::config::DEFAULT_SITE
        .replace("192.168.61.250", "127.0.0.1")
        .replace("192.168.61.", "127.0.0.")
        .replace("confirm_by_poll = true", "confirm_by_poll = false")
        // The virtual UPS on loopback too, on a free port.
        .replace("agent = \"0.0.0.0:161\"", "agent = \"127.0.0.1:0\"")
}

/// Lines of a child's stream, delivered through a channel so reads can time out.
pub fn lines(stream: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
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

/// Starts `trapgate ARGS` with its stdout and stderr as lines. The gateway is killed
/// when the test's thread ends, so that a test that fails before it stops its gateway
/// leaves none running (PR_SET_PDEATHSIG).
pub fn start(args: &[&str]) -> (Child, mpsc::Receiver<String>, mpsc::Receiver<String>) {
    start_with_env(args, &[])
}

/// `start`, with these environment variables set.
pub fn start_with_env(
    args: &[&str],
    env: &[(&str, &std::ffi::OsStr)],
) -> (Child, mpsc::Receiver<String>, mpsc::Receiver<String>) {
    start_configured(args, |c| {
        c.envs(env.iter().copied());
    })
}

/// `start`, with its command set up by `configure` first (its environment).
pub fn start_configured(
    args: &[&str],
    configure: impl FnOnce(&mut Command),
) -> (Child, mpsc::Receiver<String>, mpsc::Receiver<String>) {
    start_program(env!("CARGO_BIN_EXE_trapgate").as_ref(), args, configure)
}

/// `start_configured` of another copy of trapgate, at `program`.
pub fn start_program(
    program: &std::path::Path,
    args: &[&str],
    configure: impl FnOnce(&mut Command),
) -> (Child, mpsc::Receiver<String>, mpsc::Receiver<String>) {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(program);
    configure(&mut command);
    command
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().expect("trapgate starts");
    let out = lines(child.stdout.take().expect("stdout"));
    let err = lines(child.stderr.take().expect("stderr"));
    (child, out, err)
}

/// A free UDP port on `ip` (bound and let go).
pub fn free_port(ip: &str) -> u16 {
    std::net::UdpSocket::bind((ip, 0))
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port()
}

/// `trapgate status --http HTTP`, as a user runs it.
pub fn trapgate_status(http: std::net::SocketAddr) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_trapgate"))
        .args(["status", "--http", &http.to_string()])
        .output()
        .expect("trapgate status runs")
}

/// GET /metrics, as a scraper would.
pub fn scrape(addr: &str) -> String {
    scrape_path(addr, "/metrics")
}

/// GET `path` of the HTTP endpoint at `addr` (the whole answer, headers too).
pub fn scrape_path(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = write!(s, "GET {path} HTTP/1.0\r\n\r\n");
    let mut page = String::new();
    let _ = s.read_to_string(&mut page);
    page
}

/// The next `n` ShutdownRecorder lines on the gateway's stdout (10 s for each at most).
pub fn orders(out: &mpsc::Receiver<String>, n: usize) -> Vec<String> {
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
pub fn listening_on(err: &mpsc::Receiver<String>) -> std::net::SocketAddr {
    address_in(&listening_line(err))
}

/// The first line `trapgate run` writes on stderr: where it listens, and how.
pub fn listening_line(err: &mpsc::Receiver<String>) -> String {
    err.recv_timeout(Duration::from_secs(30))
        .expect("trapgate says where it listens")
}

/// The first address in a `listening on …` line.
pub fn address_in(line: &str) -> std::net::SocketAddr {
    line.split("listening on ")
        .nth(1)
        .and_then(|r| r.split([' ', ',']).next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
}

pub fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: signalling our own child process, whose pid we hold.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(child.id() as libc::pid_t, sig);
    }
}

pub fn terminate(child: &Child) {
    signal(child, libc::SIGTERM);
}

/// `trapgate run` on the loopback site (written as `name`), on a free port, with `extra`
/// arguments; the site file is returned for tests that rewrite it.
pub fn run_loopback(
    name: &str,
    extra: &[&str],
) -> (
    PathBuf,
    Child,
    mpsc::Receiver<String>,
    mpsc::Receiver<String>,
) {
    let site = site_file(name, &loopback_site());
    let mut args = vec![
        "run",
        "--config",
        site.to_str().expect("UTF-8"),
        "--listen",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    let (child, out, err) = start(&args);
    (site, child, out, err)
}

/// Waits (15 s at most) for a line of `out` containing every one of `want`.
pub fn expect_line(out: &mpsc::Receiver<String>, want: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Ok(line) = out.recv_timeout(Duration::from_millis(100)) {
            if want.iter().all(|w| line.contains(w)) {
                return line;
            }
            seen.push(line);
        }
    }
    panic!("no line with {want:?} in:\n{}", seen.join("\n"))
}

/// The virtual UPS's address, from the listening line.
pub fn agent_of(line: &str) -> std::net::SocketAddr {
    line.split("virtual UPS on ")
        .nth(1)
        .and_then(|r| r.split([' ', ';', ',']).next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no agent address in {line:?}"))
}

/// Where `tool` is on the PATH (or in /usr/sbin, where Debian puts daemons), if it is.
pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// The HTTP endpoint the gateway said it serves on stderr ("metrics on http://ADDR/…").
pub fn http_endpoint(err: &mpsc::Receiver<String>) -> std::net::SocketAddr {
    let line = expect_line(err, &["metrics on http://"]);
    line.split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no endpoint address in {line:?}"))
}

/// `trapgate run` on `site`, its traps on a loopback port and its HTTP endpoint on
/// another: (child, stdout, stderr, the trap address, the endpoint).
pub fn run_with_http(
    site: &std::path::Path,
) -> (
    Child,
    mpsc::Receiver<String>,
    mpsc::Receiver<String>,
    std::net::SocketAddr,
    std::net::SocketAddr,
) {
    let (child, out, err) = start(&[
        "run",
        "--config",
        site.to_str().expect("UTF-8"),
        "--listen",
        "127.0.0.1:0",
        "--http",
        "127.0.0.1:0",
    ]);
    let traps = listening_on(&err);
    let http = http_endpoint(&err);
    (child, out, err, traps, http)
}

/// Whether net-snmp's `snmptrap` is here; if not, the test says it skips.
#[allow(dead_code)] // not every test binary sends with snmptrap
pub fn have_snmptrap() -> bool {
    let here = which("snmptrap").is_some();
    if !here {
        trapgate::testing::skip(
            "snmptrap is not installed (apt-get install snmp, or bash .ci/run)",
        );
    }
    here
}

/// A net-snmp command with a persistent directory of its own: net-snmp's tools keep
/// state there (their engine's boots, users' keys by engine), and tests running at once
/// must not share it.
pub fn net_snmp_cmd(tool: &str) -> Command {
    let dir = std::env::temp_dir().join(format!(
        "trapgate-netsnmp-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::create_dir_all(&dir);
    let mut c = Command::new(tool);
    c.env("SNMP_PERSISTENT_DIR", &dir).env("SNMPCONFPATH", &dir);
    c
}

/// The text of the APC onBattery trap net-snmp's `snmptrap` sends in `snmptrap_v3`.
pub const ON_BATTERY_TEXT: &str = "UPS: On battery power in response to an input power problem.";

/// `snmptrap -v 3 args… to`: APC's upsOnBattery (1.3.6.1.4.1.318.0.5) with its text.
pub fn snmptrap_v3(args: &[&str], to: &str) -> std::process::Output {
    net_snmp_cmd("snmptrap")
        .args(["-M", "/dev/null", "-v", "3"])
        .args(args)
        .arg(to)
        .args([
            "",
            "1.3.6.1.4.1.318.0.5",
            "1.3.6.1.4.1.318.2.3.3.0",
            "s",
            ON_BATTERY_TEXT,
        ])
        .output()
        .expect("snmptrap runs")
}

/// What `snmptrap_v3(args…)` sends, caught on a socket of our own.
pub fn caught_v3_trap(args: &[&str]) -> Vec<u8> {
    let sink = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    sink.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let to = format!("udp:{}", sink.local_addr().expect("addr"));
    let out = snmptrap_v3(args, &to);
    assert!(out.status.success(), "{out:?}");
    let mut buf = [0u8; 4096];
    let (n, _) = sink.recv_from(&mut buf).expect("snmptrap's trap");
    buf[..n].to_vec()
}

/// net-snmp's snmpd playing a UPS card at `listen` (`udp:ADDR:PORT`) with the
/// configuration `conf` (its communities or users, and the card's values by
/// `override`), its state in `dir`; None, with the test said skipped, where snmpd is
/// missing.
pub fn snmpd_card(dir: &std::path::Path, listen: &str, conf: &str) -> Option<Child> {
    let Some(snmpd) = which("snmpd") else {
        trapgate::testing::skip("snmpd is not installed (apt-get install snmpd, or bash .ci/run)");
        return None;
    };
    let file = dir.join("snmpd.conf");
    std::fs::write(&file, conf).expect("snmpd.conf");
    let child = Command::new(snmpd)
        .args(["-f", "-Lo", "-C", "-c"])
        .arg(&file)
        .args(["-M", "/dev/null", "-p"])
        .arg(dir.join("snmpd.pid"))
        .arg(listen)
        .env("SNMP_PERSISTENT_DIR", dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("snmpd starts");
    Some(child)
}

/// A gateway run in this test's process on a site's text (its `listen`, usually
/// "127.0.0.1:0"), stopped by its shutdown handle: what the binary would print on
/// stdout comes as lines (`out`), typed records too (`records`), and `stop` returns the
/// summary the binary prints on stderr.
pub struct InProcess {
    /// Each record as `trapgate run` prints it.
    pub out: mpsc::Receiver<String>,
    /// Each record, typed.
    pub records: mpsc::Receiver<trapgate::engine::record::Record>,
    /// Where it hears traps.
    pub traps: std::net::SocketAddr,
    /// Its virtual UPS.
    pub agent: std::net::SocketAddr,
    /// Its HTTP endpoint, if it was given one.
    pub http: Option<std::net::SocketAddr>,
    /// Everything it bound, as `start` said.
    pub bound: trapgate::daemon::Bound,
    shutdown: trapgate::daemon::Shutdown,
    thread: std::thread::JoinHandle<
        Result<trapgate::daemon::server::Stopped, trapgate::daemon::server::StartError>,
    >,
}

impl InProcess {
    /// Starts it on `text`, journaling to `journal` if given.
    pub fn start(text: &str, journal: Option<PathBuf>) -> InProcess {
        InProcess::with(
            text,
            trapgate::daemon::Options {
                journal,
                ..trapgate::daemon::Options::default()
            },
        )
    }

    /// Starts it on `text`, its traps heard on a free loopback port.
    pub fn on_loopback(text: &str) -> InProcess {
        InProcess::with(
            text,
            trapgate::daemon::Options {
                listen: vec!["127.0.0.1:0".parse().expect("an address")],
                ..trapgate::daemon::Options::default()
            },
        )
    }

    /// Starts it on `text` with `opts` (its shutdown handle set here).
    pub fn with(text: &str, mut opts: trapgate::daemon::Options) -> InProcess {
        let site =
            trapgate::engine::config::Site::parse_with(text, &trapgate::daemon::secrets::read)
                .expect("a valid site");
        let shutdown = trapgate::daemon::Shutdown::new();
        opts.shutdown = Some(shutdown.clone());
        let (out_tx, out) = mpsc::channel();
        let (records_tx, records) = mpsc::channel();
        // Started here (a bind that fails, fails the test here), run on a thread of its
        // own until its handle stops it.
        let gateway = trapgate::daemon::start(
            site,
            opts,
            move |s| {
                let _ = out_tx.send(s.printed.to_string());
                let _ = records_tx.send(s.record.clone());
            },
            || Err("no reload in process".into()),
        )
        .expect("the gateway starts");
        let bound = gateway.bound().clone();
        let (traps, agent, http) = (bound.listen[0], bound.agent, bound.metrics);
        let thread = std::thread::spawn(move || gateway.run());
        InProcess {
            out,
            records,
            traps,
            agent,
            http,
            bound,
            shutdown,
            thread,
        }
    }

    /// Its printed records, taken to be read apart from it (what it prints from now on
    /// goes there).
    pub fn take_out(&mut self) -> mpsc::Receiver<String> {
        std::mem::replace(&mut self.out, mpsc::channel().1)
    }

    /// Stops it with its handle; the summary `trapgate run` prints when it stops.
    pub fn stop(self) -> String {
        self.finish().0
    }

    /// Stops it with its handle: the summary, and every record printed that the test
    /// had not read.
    pub fn finish(self) -> (String, Vec<String>) {
        let InProcess {
            out,
            shutdown,
            thread,
            ..
        } = self;
        shutdown.stop();
        let stopped = thread.join().expect("no panic").expect("a clean stop");
        let summary = trapgate::cli::report::stop_summary(&stopped.stats, stopped.signal);
        (summary, out.iter().collect())
    }
}

/// The gateway on the site file `site` in this process, on loopback with an HTTP
/// endpoint: (the gateway, its trap address, its endpoint).
pub fn in_process_with_http(
    site: &std::path::Path,
) -> (InProcess, std::net::SocketAddr, std::net::SocketAddr) {
    let text = std::fs::read_to_string(site).expect("the site file");
    let gw = InProcess::with(
        &text,
        trapgate::daemon::Options {
            listen: vec!["127.0.0.1:0".parse().expect("an address")],
            metrics: Some("127.0.0.1:0".parse().expect("an address")),
            ..trapgate::daemon::Options::default()
        },
    );
    let (traps, http) = (gw.traps, gw.http.expect("an HTTP endpoint"));
    (gw, traps, http)
}
