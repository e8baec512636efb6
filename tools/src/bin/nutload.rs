//! nutload: thousands of NUT clients polling a NUT server, on loopback: trapgate's, and
//! side by side in the same run NUT's own `upsd` with a `dummy-ups` driver (Debian's
//! nut-server) where it is installed.
//!
//! Each client logs in as a NAS does (`USERNAME`, `PASSWORD`, `LOGIN ups`) from its
//! own loopback address (127.20.x.y: trapgate knows a client by its address), then asks
//! `GET VAR ups ups.status` every `--interval` seconds, the clients spread evenly over
//! the interval. Measured over `--seconds`: requests answered, the server's CPU per
//! request (user + system from /proc/PID/stat, 10 ms ticks: the whole trapgate process,
//! or upsd alone), the answer latency, and the server's peak RSS. For trapgate, then:
//! the UPS's lowBattery trap, and the time until every client's next poll is answered
//! `FSD OB LB`.
//!
//! `--flood`: a trap's decision latency (arrival to decision, trapgate's own
//! `/metrics`) for 1,000 coldStart traps from the UPS at 200/s, with the NUT server
//! idle, then in a fresh gateway while 10,000 connections that say nothing are held
//! open and 8 clients send 1 MB lines without end (reconnecting as each is closed). The
//! attacker would be another machine: here the load has the first CPU and the gateway
//! the others, in both runs, and the flood's threads run at the lowest priority.
//!
//! `--scrape`: the same decision latency on a site of `--clients` recorders, with
//! nobody at the HTTP endpoint, then with a scraper at `/metrics` every second and two
//! status pages open (`/status.json` every second each).
//!
//! Loopback only; every phase is bounded in time and stops by itself.
//! Run: `cargo build --release && cargo run --release -p trapgate-tools --bin nutload`.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use trapgate::wire::encode;
use trapgate::wire::oid::oid;
use trapgate::wire::{Message, Value, VarBind};
use trapgate_tools::{cold_start, spawn_listening, stop};

#[derive(Parser)]
#[command(about = "NUT clients against trapgate's NUT server and NUT's own upsd")]
struct Args {
    /// The trapgate binary.
    #[arg(long, default_value = "target/release/trapgate")]
    trapgate: PathBuf,
    /// NUT clients.
    #[arg(long, default_value_t = 5000)]
    clients: usize,
    /// Seconds between one client's polls.
    #[arg(long, default_value_t = 5.0)]
    interval: f64,
    /// Seconds measured (after every client is logged in and one interval has passed).
    #[arg(long, default_value_t = 30.0)]
    seconds: f64,
    /// Do not run upsd beside trapgate.
    #[arg(long)]
    no_upsd: bool,
    /// Also: a trap's decision latency, the NUT server idle and flooded.
    #[arg(long)]
    flood: bool,
    /// Also: a trap's decision latency on a site of `--clients` recorders, nobody at
    /// the HTTP endpoint, then a scraper at /metrics and two status pages open (each
    /// asking /status.json every second).
    #[arg(long)]
    scrape: bool,
}

const UPS: Ipv4Addr = Ipv4Addr::new(127, 13, 0, 1);
const UPSD: &str = "/lib/nut/upsd";
const DUMMY_UPS: &str = "/lib/nut/dummy-ups";

/// Client `i`'s own address.
fn client_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 20, (i / 250) as u8, (i % 250) as u8 + 1)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port()
}

/// A process's CPU (user + system), seconds.
fn cpu_s(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command's closing parenthesis: utime and stime are the 12th
    // and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // SAFETY: sysconf has no preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)) as f64 / tick
}

/// A process's resident memory now and at its peak, MiB.
fn rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (kib("VmRSS:") / 1024.0, kib("VmHWM:") / 1024.0)
}

/// Raises this process's open-file limit to its hard limit; returns it.
fn raise_files() -> u64 {
    trapgate::daemon::socket::raise_fd_limit()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Connecting,
    LoggingIn(u8),
    Ready,
}

struct Client {
    stream: TcpStream,
    state: State,
    input: Vec<u8>,
    asked: Option<Instant>,
    fsd: Option<Instant>,
}

/// What one load phase saw.
#[derive(Default)]
struct Seen {
    answers: u64,
    /// Polls not sent because the last one was still unanswered.
    late: u64,
    latency: Option<Histogram<u64>>,
}

/// The clients of one server.
struct Load {
    poll: Poll,
    clients: Vec<Client>,
    interval: Duration,
    /// Polls sent so far, over all clients, in the order of their turns.
    turn: u64,
    start: Instant,
}

impl Load {
    /// Connects `n` clients to `server` and logs each in, within `limit`.
    fn connect(server: SocketAddr, n: usize, interval: f64, limit: Duration) -> io::Result<Load> {
        let mut poll = Poll::new()?;
        let mut clients = Vec::with_capacity(n);
        let deadline = Instant::now() + limit;
        let mut events = Events::with_capacity(4096);
        let mut ready = 0;
        let mut next = 0;
        while ready < n {
            // At most 16 connections opening at once (upsd listens with a backlog of 16;
            // a SYN past it waits 1, 3, 7 s... to be sent again).
            while next < n && next - ready < 16 {
                let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
                s.bind(&SocketAddr::from((client_addr(next), 0)).into())?;
                s.set_nonblocking(true)?;
                s.set_tcp_nodelay(true)?;
                match s.connect(&server.into()) {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
                    Err(e) => return Err(e),
                }
                let mut stream = TcpStream::from_std(s.into());
                poll.registry().register(
                    &mut stream,
                    Token(next),
                    Interest::READABLE | Interest::WRITABLE,
                )?;
                clients.push(Client {
                    stream,
                    state: State::Connecting,
                    input: Vec::new(),
                    asked: None,
                    fsd: None,
                });
                next += 1;
            }
            let left = deadline
                .checked_duration_since(Instant::now())
                .ok_or_else(|| io::Error::other(format!("{ready} of {n} clients logged in")))?;
            poll.poll(&mut events, Some(left.min(Duration::from_millis(100))))?;
            for e in events.iter() {
                let c = &mut clients[e.token().0];
                if c.state == State::Connecting && e.is_writable() {
                    if let Some(err) = c.stream.take_error()? {
                        return Err(err);
                    }
                    c.stream
                        .write_all(b"USERNAME mon\nPASSWORD secret\nLOGIN ups\n")?;
                    c.state = State::LoggingIn(0);
                }
                if e.is_readable() {
                    for line in read_lines(c)? {
                        if let State::LoggingIn(k) = c.state {
                            if !line.starts_with("OK") {
                                return Err(io::Error::other(format!("login: {line}")));
                            }
                            c.state = if k == 2 {
                                ready += 1;
                                State::Ready
                            } else {
                                State::LoggingIn(k + 1)
                            };
                        }
                    }
                }
            }
        }
        Ok(Load {
            poll,
            clients,
            interval: Duration::from_secs_f64(interval),
            turn: 0,
            start: Instant::now(),
        })
    }

    /// Polls on schedule until `until`; what was answered goes into `seen`.
    fn run(&mut self, until: Instant, seen: &mut Seen) -> io::Result<()> {
        let n = self.clients.len() as u64;
        let mut events = Events::with_capacity(4096);
        loop {
            let now = Instant::now();
            if now >= until {
                return Ok(());
            }
            // Every turn due: client turn % n, at start + interval * turn / n.
            let due = |turn: u64| self.start + self.interval.mul_f64(turn as f64 / n as f64);
            while due(self.turn) <= now {
                let c = &mut self.clients[(self.turn % n) as usize];
                self.turn += 1;
                if c.asked.is_some() {
                    seen.late += 1;
                    continue;
                }
                c.stream.write_all(b"GET VAR ups ups.status\n")?;
                c.asked = Some(now);
            }
            let wait = due(self.turn).min(until).saturating_duration_since(now);
            self.poll.poll(&mut events, Some(wait))?;
            let at = Instant::now();
            for e in events.iter() {
                if !e.is_readable() {
                    continue;
                }
                let c = &mut self.clients[e.token().0];
                for line in read_lines(c)? {
                    if !line.starts_with("VAR ups ups.status") {
                        return Err(io::Error::other(format!("answer: {line}")));
                    }
                    if let Some(asked) = c.asked.take() {
                        seen.answers += 1;
                        if let Some(h) = seen.latency.as_mut() {
                            h.saturating_record(at.duration_since(asked).as_micros() as u64);
                        }
                    }
                    if line.contains("FSD") && c.fsd.is_none() {
                        c.fsd = Some(at);
                    }
                }
            }
        }
    }
}

/// The whole lines `c` has sent so far.
fn read_lines(c: &mut Client) -> io::Result<Vec<String>> {
    let mut buf = [0u8; 4096];
    loop {
        match c.stream.read(&mut buf) {
            Ok(0) => {
                let phase = match c.state {
                    State::Connecting => "connecting",
                    State::LoggingIn(_) => "logging in",
                    State::Ready => "polling",
                };
                return Err(io::Error::other(format!(
                    "the server closed a connection ({phase}; it had sent {:?})",
                    String::from_utf8_lossy(&c.input)
                )));
            }
            Ok(k) => c.input.extend_from_slice(&buf[..k]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let mut lines = Vec::new();
    while let Some(end) = c.input.iter().position(|&b| b == b'\n') {
        let line: Vec<u8> = c.input.drain(..=end).collect();
        lines.push(String::from_utf8_lossy(&line).trim_end().to_string());
    }
    Ok(lines)
}

/// The site: the UPS, and a NUT recorder per client (its own address; UPS `ups`).
fn site(listen: u16, nut: u16, clients: usize) -> String {
    let mut t = format!(
        "[gateway]\nlisten = [\"127.0.0.1:{listen}\"]\nagent = \"127.0.0.1:0\"\nnut = \"127.0.0.1:{nut}\"\n\n\
         [policy]\ngrace = {{ 1 = \"30m\" }}\nshutdown_below_charge = 30\nshutdown_below_runtime = \"5m\"\n\
         confirm_by_poll = false\n\n\
         [[ups]]\nname = \"ups-main\"\naddress = \"{UPS}\"\nvendor = \"apc\"\npoll_interval = \"60s\"\noutlet_off_delay = \"5m\"\n\n"
    );
    for i in 0..clients {
        t.push_str(&format!(
            "[[recorder]]\nname = \"nas-{i}\"\naddress = \"{}\"\nups = \"ups-main\"\ntier = 1\nshutdown_time = \"60s\"\nkind = \"nut\"\nnut_user = \"mon\"\nnut_password = \"secret\"\nnut_ups = \"ups\"\n\n",
            client_addr(i)
        ));
    }
    t
}

/// Pins the calling thread (and the threads it starts after) to CPUs `cpus`.
fn pin(cpus: std::ops::Range<usize>) {
    // SAFETY: a zeroed cpu_set_t filled with CPU_SET, for this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for c in cpus {
            libc::CPU_SET(c, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// CPUs this machine has.
fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `trapgate run` on `site`, once it listens; its stderr drained. With `own_cpus`, it
/// runs on every CPU but the first (the load's).
fn start_trapgate(bin: &Path, site: &Path, metrics: Option<u16>, own_cpus: bool) -> Child {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(bin);
    cmd.args(["run", "--config"]).arg(site);
    if own_cpus && cpus() > 1 {
        let n = cpus();
        // SAFETY: sched_setaffinity is async-signal-safe; nothing else runs before exec.
        unsafe {
            cmd.pre_exec(move || {
                pin(1..n);
                Ok(())
            });
        }
    }
    if let Some(p) = metrics {
        cmd.args(["--metrics", &format!("127.0.0.1:{p}")]);
    }
    spawn_listening(&mut cmd)
}

/// The APC lowBattery v1 trap from the UPS.
fn low_battery() -> Vec<u8> {
    let enterprise = oid("1.3.6.1.4.1.318");
    let text = oid("1.3.6.1.4.1.318.2.3.3.0");
    let vb = [VarBind {
        name: text.as_oid(),
        value: Value::OctetString(b"UPS: Low battery. A shutdown is imminent."),
    }];
    encode::to_vec(&Message::trap_v1(
        b"public",
        enterprise.as_oid(),
        UPS.octets(),
        7,
        100,
        &vb,
    ))
}

/// What one server gave under the load.
struct Figures {
    answers: u64,
    late: u64,
    cpu_per_request_us: f64,
    latency: Histogram<u64>,
    rss: (f64, f64),
}

/// Logs the clients in to `server` (process `pid`), lets one interval pass, then
/// measures `args.seconds`.
fn measure(args: &Args, server: SocketAddr, pid: u32) -> io::Result<(Load, Figures)> {
    let mut load = Load::connect(
        server,
        args.clients,
        args.interval,
        Duration::from_secs(120),
    )?;
    let mut warm = Seen::default();
    load.run(
        Instant::now() + Duration::from_secs_f64(args.interval),
        &mut warm,
    )?;
    let mut seen = Seen {
        latency: Some(Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram")),
        ..Seen::default()
    };
    let cpu0 = cpu_s(pid);
    load.run(
        Instant::now() + Duration::from_secs_f64(args.seconds),
        &mut seen,
    )?;
    let cpu = cpu_s(pid) - cpu0;
    let figures = Figures {
        answers: seen.answers,
        late: seen.late,
        cpu_per_request_us: cpu * 1e6 / seen.answers.max(1) as f64,
        latency: seen.latency.expect("made"),
        rss: rss_mib(pid),
    };
    Ok((load, figures))
}

/// trapgate under the load, then its FSD: the lowBattery trap, and how long until
/// every client's next poll is answered FSD (p50, last), seconds.
fn trapgate_run(args: &Args, dir: &Path) -> io::Result<(Figures, (f64, f64))> {
    let (listen, nut) = (free_port(), free_port());
    let file = dir.join("site.toml");
    std::fs::write(&file, site(listen, nut, args.clients))?;
    let mut child = start_trapgate(&args.trapgate, &file, None, false);
    let result = (|| {
        let (mut load, figures) =
            measure(args, SocketAddr::from(([127, 0, 0, 1], nut)), child.id())?;
        let ups = UdpSocket::bind((UPS, 0))?;
        let sent = Instant::now();
        ups.send_to(&low_battery(), ("127.0.0.1", listen))?;
        let mut seen = Seen::default();
        let until = sent + Duration::from_secs_f64(args.interval * 3.0);
        while Instant::now() < until && load.clients.iter().any(|c| c.fsd.is_none()) {
            load.run(Instant::now() + Duration::from_millis(50), &mut seen)?;
        }
        let mut after: Vec<f64> = load
            .clients
            .iter()
            .filter_map(|c| c.fsd.map(|t| t.duration_since(sent).as_secs_f64()))
            .collect();
        after.sort_by(f64::total_cmp);
        if after.len() < load.clients.len() {
            return Err(io::Error::other(format!(
                "{} of {} clients read FSD",
                after.len(),
                load.clients.len()
            )));
        }
        Ok((figures, (after[after.len() / 2], after[after.len() - 1])))
    })();
    stop(&mut child);
    result
}

/// upsd with a dummy-ups driver, under the same load.
fn upsd_run(args: &Args, dir: &Path) -> io::Result<Figures> {
    let port = free_port();
    let dir = dir.join("upsd");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("ups.conf"),
        "[ups]\n  driver = dummy-ups\n  port = ups.dev\n  desc = \"nutload\"\n",
    )?;
    std::fs::write(
        dir.join("ups.dev"),
        "ups.status: OL\nbattery.charge: 100\nbattery.runtime: 1200\nups.mfr: APC\nups.model: Smart-UPS\ndevice.type: ups\n",
    )?;
    std::fs::write(
        dir.join("upsd.conf"),
        format!("LISTEN 127.0.0.1 {port}\nMAXCONN {}\n", args.clients + 64),
    )?;
    std::fs::write(
        dir.join("upsd.users"),
        "[mon]\n  password = secret\n  upsmon secondary\n",
    )?;
    std::fs::write(dir.join("nut.conf"), "MODE=netserver\n")?;
    // SAFETY: getuid has no preconditions.
    let root = unsafe { libc::getuid() } == 0;
    if root {
        let _ = Command::new("chown")
            .args(["-R", "nut:nut"])
            .arg(&dir)
            .status();
    }
    let _ = Command::new("chmod")
        .arg("640")
        .arg(dir.join("upsd.users"))
        .status();
    let env = |c: &mut Command, log: &str| -> io::Result<()> {
        c.env("NUT_CONFPATH", &dir)
            .env("NUT_STATEPATH", &dir)
            .env("NUT_ALTPIDPATH", &dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join(log))?);
        if root {
            c.args(["-u", "nut"]);
        }
        Ok(())
    };
    let mut driver = Command::new(DUMMY_UPS);
    driver.args(["-a", "ups", "-F"]);
    env(&mut driver, "driver.log")?;
    let mut driver = driver.spawn()?;
    std::thread::sleep(Duration::from_millis(500));
    let mut upsd = Command::new(UPSD);
    upsd.arg("-F");
    env(&mut upsd, "upsd.log")?;
    let mut upsd = upsd.spawn()?;
    std::thread::sleep(Duration::from_millis(500));
    let result = measure(args, SocketAddr::from(([127, 0, 0, 1], port)), upsd.id())
        .map(|(_, f)| f)
        .map_err(|e| {
            let log = std::fs::read_to_string(dir.join("upsd.log")).unwrap_or_default();
            let tail: Vec<&str> = log
                .lines()
                .filter(|l| l.contains("isconnect") || l.contains("ail") || l.contains("rror"))
                .take(8)
                .collect();
            io::Error::other(format!("{e}; upsd said: {}", tail.join(" | ")))
        });
    stop(&mut upsd);
    stop(&mut driver);
    result
}

/// What runs beside the traps.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Beside {
    Nothing,
    /// 10,000 idle connections and 8 writers of 1 MB lines at the NUT server.
    Flood,
    /// A scraper and two status pages at the HTTP endpoint.
    Scrape,
}

/// The Informational decision latency (p50, p99, max as p99.9) of 1,000 coldStart
/// traps at 200/s, µs, from `/metrics`, on a site of `recorders`, with `beside`.
fn decision_latency(
    args: &Args,
    dir: &Path,
    recorders: usize,
    beside: Beside,
) -> io::Result<(f64, f64, f64, u64)> {
    let (listen, nut, metrics) = (free_port(), free_port(), free_port());
    let file = dir.join("flood-site.toml");
    std::fs::write(&file, site(listen, nut, recorders))?;
    // The attacker is another machine of the site: here it has the first CPU to
    // itself, and the gateway the others (both runs alike).
    let mut child = start_trapgate(&args.trapgate, &file, Some(metrics), true);
    if cpus() > 1 {
        pin(0..1);
    }
    let result = flood_and_measure(listen, nut, metrics, beside);
    stop(&mut child);
    pin(0..cpus());
    result
}

/// The traps, and `beside` them the flood or the scrapers, against the gateway
/// listening on `listen` (traps), `nut` and `metrics`.
fn flood_and_measure(
    listen: u16,
    nut: u16,
    metrics: u16,
    beside: Beside,
) -> io::Result<(f64, f64, f64, u64)> {
    let server = SocketAddr::from(([127, 0, 0, 1], nut));
    let done = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    let mut idle = Vec::new();
    if beside == Beside::Scrape {
        for path in ["/metrics", "/status.json", "/status.json"] {
            let done = Arc::clone(&done);
            threads.push(std::thread::spawn(move || {
                let mut got = 0u64;
                while !done.load(Ordering::Relaxed) {
                    got += get(metrics, path).len() as u64;
                    std::thread::sleep(Duration::from_secs(1));
                }
                got
            }));
        }
    }
    if beside == Beside::Flood {
        // 10,000 connections that say nothing, from the recorders' own addresses.
        for i in 0..10_000 {
            let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
            s.bind(&SocketAddr::from((client_addr(i % 250), 0)).into())?;
            let _ = s.set_linger(Some(Duration::ZERO));
            if s.connect_timeout(&server.into(), Duration::from_secs(5))
                .is_ok()
            {
                idle.push(s);
            }
        }
        // 8 clients sending 1 MB lines, reconnecting each time they are closed.
        for k in 0..8 {
            let done = Arc::clone(&done);
            threads.push(std::thread::spawn(move || {
                // The attacker is on another machine of the site: on this one's two
                // cores it runs at the lowest priority, so that what is measured is
                // what the flood costs the gateway, not what its sender costs the CPU.
                // SAFETY: gettid and setpriority on this thread.
                unsafe {
                    let tid = libc::gettid() as libc::id_t;
                    libc::setpriority(libc::PRIO_PROCESS, tid, 19);
                }
                let line = vec![b'A'; 1 << 20];
                let mut sent = 0u64;
                while !done.load(Ordering::Relaxed) {
                    let Ok(s) =
                        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
                    else {
                        break;
                    };
                    let _ = s.bind(&SocketAddr::from((client_addr(k), 0)).into());
                    let _ = s.set_linger(Some(Duration::ZERO));
                    if s.connect_timeout(&server.into(), Duration::from_secs(5))
                        .is_err()
                    {
                        continue;
                    }
                    let mut s: std::net::TcpStream = s.into();
                    if let Ok(()) = s.write_all(&line) {
                        sent += 1;
                    }
                }
                sent
            }));
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let ups = UdpSocket::bind((UPS, 0))?;
    let trap = cold_start();
    let start = Instant::now();
    for k in 0..1000u32 {
        let at = start + Duration::from_millis(5 * k as u64);
        if let Some(wait) = at.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        ups.send_to(&trap, ("127.0.0.1", listen))?;
    }
    std::thread::sleep(Duration::from_millis(1500));
    let page = scrape(metrics);
    done.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let open = page
        .lines()
        .find_map(|l| l.strip_prefix("trapgate_tcp_connections{server=\"nut\"}"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    drop(idle);
    let q = |quantile: &str| {
        let key = format!("trapgate_counted_latency_{quantile}_seconds{{event=\"Informational\"}}");
        page.lines()
            .find_map(|l| l.strip_prefix(key.as_str()))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map_or(f64::NAN, |s| s * 1e6)
    };
    Ok((q("p50"), q("p99"), q("p999"), open))
}

/// GET /metrics.
fn scrape(port: u16) -> String {
    get(port, "/metrics")
}

/// GET `path` of the HTTP endpoint on `port`, head and body.
fn get(port: u16, path: &str) -> String {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = write!(s, "GET {path} HTTP/1.0\r\n\r\n");
    let mut page = String::new();
    let _ = s.read_to_string(&mut page);
    page
}

fn print_figures(name: &str, f: &Figures) {
    let us = |q: f64| f.latency.value_at_quantile(q) as f64 / 1e3;
    println!(
        "{name:<10} answered {:>7}  late {:>5}  CPU/request {:>6.2} µs  answer p50 {:>6.2} ms  p99 {:>6.2} ms  RSS {:>5.1} MiB (peak {:.1})",
        f.answers,
        f.late,
        f.cpu_per_request_us,
        us(0.5),
        us(0.99),
        f.rss.0,
        f.rss.1
    );
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let files = raise_files();
    if (files as usize) < args.clients + 11_000 {
        eprintln!(
            "nutload: {} clients (and the flood's 10,000) need {} open files; this process may open {files}",
            args.clients,
            args.clients + 11_000
        );
    }
    let dir = std::env::temp_dir().join(format!("nutload-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    println!(
        "nutload: {} NUT clients (127.20.x.y), each polling ups.status every {} s; {} s measured",
        args.clients, args.interval, args.seconds
    );
    let ours = match trapgate_run(&args, &dir) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("nutload: trapgate: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    print_figures("trapgate", &ours.0);
    println!(
        "trapgate   lowBattery trap → every client's next poll answered FSD: p50 {:.2} s, last {:.2} s (polls every {} s)",
        ours.1.0, ours.1.1, args.interval
    );
    if !args.no_upsd {
        if Path::new(UPSD).exists() && Path::new(DUMMY_UPS).exists() {
            match upsd_run(&args, &dir) {
                Ok(f) => {
                    print_figures("upsd", &f);
                    println!(
                        "upsd / trapgate: CPU per request {:.1}×",
                        f.cpu_per_request_us / ours.0.cpu_per_request_us
                    );
                }
                Err(e) => eprintln!("nutload: upsd: {e}"),
            }
        } else {
            println!("upsd: not installed ({UPSD}, {DUMMY_UPS}: apt-get install nut-server)");
        }
    }
    let runs: Vec<(usize, Beside, &str)> = [
        (args.flood, 250, Beside::Nothing, "NUT server idle   "),
        (args.flood, 250, Beside::Flood, "NUT server flooded"),
        (
            args.scrape,
            args.clients,
            Beside::Nothing,
            "nobody at the HTTP endpoint",
        ),
        (
            args.scrape,
            args.clients,
            Beside::Scrape,
            "a scraper and two status pages",
        ),
    ]
    .into_iter()
    .filter(|r| r.0)
    .map(|(_, n, b, what)| (n, b, what))
    .collect();
    for (recorders, beside, what) in runs {
        match decision_latency(&args, &dir, recorders, beside) {
            Ok((p50, p99, p999, open)) => println!(
                "trap decision, {recorders} recorders, {what}: p50 {p50:.1} µs  p99 {p99:.1} µs  p99.9 {p999:.1} µs{}",
                if beside == Beside::Flood {
                    format!(" ({open} idle connections held, 8 clients sending 1 MB lines)")
                } else {
                    String::new()
                }
            ),
            Err(e) => eprintln!("nutload: {what}: {e}"),
        }
    }
    if std::env::var_os("NUTLOAD_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    std::process::ExitCode::SUCCESS
}
