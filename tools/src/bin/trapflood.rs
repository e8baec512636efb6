//! trapflood: what a flood on the site's network does to a real UPS trap, on loopback.
//!
//! Starts `trapgate run` on a generated loopback site (one UPS and one recorder per try
//! and phase, at 127.10.x.y and 127.11.x.y), then, phase by phase, sends real APC
//! lowBattery traps from fresh UPSes — one at a time, `--tries` of them — and times each
//! from the moment it leaves to the moment the recorder's socket receives its order.
//! The first phase is idle; in each of the others a flood runs flat out meanwhile, from
//! the addresses an attacker on the site's network would bind:
//!
//! - `forged-answers`: get-responses "on battery, charge 0" to the gateway's poll socket,
//!   from every UPS's address and polled port, with the UPS's community, random ids;
//! - `forged-acks`: acknowledgement traps from every recorder's address, wrong community;
//! - `refused-traps`: lowBattery traps from every UPS's address, wrong community;
//! - `getbulk`: GetBulk requests (50 names, 64 repetitions) to the virtual UPS from
//!   every recorder's address, with the right community (a recorder gone mad);
//! - `foreign`: traps from addresses that are not the site's;
//! - `v3-reports`: reportable SNMPv3 discovery probes from every UPS's address (each
//!   asks for a Report);
//! - `v3-engines`: SNMPv3 traps of the site's user from every UPS's address, each
//!   naming a new random engine ID, keyed with a guessed passphrase (each would cost
//!   a key localization);
//! - `nut-connections`, `nis-connections`: TCP connections to the NUT or the NIS server
//!   from a recorder's own address, opened flat out and held (the oldest closed by the
//!   flood when it holds 10,000);
//! - `nut-logins`: 16 connections from the NUT recorder's address pipelining wrong
//!   passwords;
//! - `nis-status`: 16 connections from the apcupsd recorder's address pipelining
//!   `status` requests, their answers read.
//!
//! After each phase it reads the gateway's /metrics and journal: what was sent, dropped
//! by the kernel, refused by reason, and how many records the journal gained. At the end
//! it checks every decision the gateway printed: a shutdown for each real trap, and
//! nothing any forged datagram caused. Loopback only; every flood is bounded in count
//! and in time.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use trapgate::daemon::socket::SendBatch;
use trapgate::wire::encode;
use trapgate::wire::oid::oid;
use trapgate::wire::{Message, PduType, Value, VarBind, Version};
use trapgate_tools::wall_ns;

#[derive(Parser)]
#[command(about = "Floods a loopback trapgate while real UPS traps arrive, and measures them")]
struct Args {
    /// The trapgate binary.
    #[arg(long, default_value = "target/release/trapgate")]
    trapgate: PathBuf,
    /// Real traps per phase.
    #[arg(long, default_value_t = 100)]
    tries: usize,
    /// Datagrams each flood sends at most.
    #[arg(long, default_value_t = 3_000_000)]
    count: u64,
    /// Seconds each phase lasts at most.
    #[arg(long, default_value_t = 20)]
    max_seconds: u64,
    /// Only these phases (after the idle one), by name. Repeatable.
    #[arg(long = "phase")]
    phases: Vec<String>,
}

const PHASES: [&str; 12] = [
    "idle",
    "forged-answers",
    "forged-acks",
    "refused-traps",
    "getbulk",
    "foreign",
    "v3-reports",
    "v3-engines",
    "nut-connections",
    "nut-logins",
    "nis-status",
    "nis-connections",
];
/// The NUT and the apcupsd recorder the TCP floods come from (on a UPS of their own,
/// which never traps).
const NUT_RECORDER: Ipv4Addr = Ipv4Addr::new(127, 12, 0, 1);
const NIS_RECORDER: Ipv4Addr = Ipv4Addr::new(127, 12, 0, 2);
/// The port the UPSes' cards answer polls on (not 161: no privilege needed).
const CARD_PORT: u16 = 1161;

fn ups_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 10, (i / 250) as u8, (i % 250) as u8 + 1)
}

fn recorder_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 11, (i / 250) as u8, (i % 250) as u8 + 1)
}

fn site(recorder_ports: &[u16], nut: u16, nis: u16) -> String {
    let mut s = format!(
        "[gateway]\nlisten = [\"127.0.0.1:0\"]\nagent = \"127.0.0.1:0\"\ncommunity = \"public\"\n\
         nut = \"127.0.0.1:{nut}\"\nnis = \"127.0.0.1:{nis}\"\n\n\
         [policy]\ngrace = {{ 1 = \"1h\" }}\nshutdown_below_charge = 30\nshutdown_below_runtime = \"5m\"\n\
         confirm_by_poll = false\npoll_timeout = \"6s\"\nack_timeout = \"10m\"\n\n\
         [[usm_user]]\nname = \"upsv3user\"\nauth_protocol = \"SHA-256\"\nauth_passphrase = \"authpass123\"\n\n\
         [[ups]]\nname = \"ups-tcp\"\naddress = \"127.12.0.100\"\ncommunity = \"public\"\nport = {CARD_PORT}\n\
         vendor = \"apc\"\npoll_interval = \"1h\"\noutlet_off_delay = \"1h\"\n\n\
         [[recorder]]\nname = \"nas-flood\"\naddress = \"{NUT_RECORDER}\"\nups = \"ups-tcp\"\ntier = 1\n\
         shutdown_time = \"90s\"\nkind = \"nut\"\nnut_user = \"monuser\"\nnut_password = \"secret\"\nnut_ups = \"ups\"\n\n\
         [[recorder]]\nname = \"srv-flood\"\naddress = \"{NIS_RECORDER}\"\nups = \"ups-tcp\"\ntier = 1\n\
         shutdown_time = \"90s\"\nkind = \"apcupsd\"\n",
    );
    for (i, port) in recorder_ports.iter().enumerate() {
        s += &format!(
            "\n[[ups]]\nname = \"ups-{i}\"\naddress = \"{}\"\ncommunity = \"public\"\nport = {CARD_PORT}\n\
             vendor = \"apc\"\npoll_interval = \"1s\"\noutlet_off_delay = \"1h\"\n\
             \n[[recorder]]\nname = \"nvr-{i}\"\naddress = \"{}\"\nport = {}\nups = \"ups-{i}\"\n\
             tier = 1\nshutdown_time = \"90s\"\n",
            ups_addr(i),
            recorder_addr(i),
            port
        );
    }
    s
}

fn apc_trap(community: &[u8], specific: i64, agent: Ipv4Addr) -> Vec<u8> {
    trapgate::testing::v1_trap(community, "1.3.6.1.4.1.318", agent.octets(), specific, &[])
}

/// A PowerNet card's answer, "on battery, charge 0, battery low", with request id
/// 0x12345678 (four octets, patched per datagram).
fn deadly_answer() -> (Vec<u8>, usize) {
    let names = [
        oid("1.3.6.1.4.1.318.1.1.1.4.1.1.0"),
        oid("1.3.6.1.4.1.318.1.1.1.2.1.1.0"),
        oid("1.3.6.1.4.1.318.1.1.1.2.2.1.0"),
        oid("1.3.6.1.4.1.318.1.1.1.2.2.3.0"),
    ];
    let values = [
        Value::Integer(3),
        Value::Integer(3),
        Value::Gauge32(0),
        Value::TimeTicks(0),
    ];
    let vbs: Vec<VarBind<'_>> = names
        .iter()
        .zip(values)
        .map(|(n, value)| VarBind {
            name: n.as_oid(),
            value,
        })
        .collect();
    let bytes = encode::to_vec(&Message::pdu(
        Version::V1,
        b"public",
        PduType::RESPONSE,
        0x1234_5678,
        &vbs,
    ));
    let at = bytes
        .windows(6)
        .position(|w| w == [0x02, 0x04, 0x12, 0x34, 0x56, 0x78])
        .expect("the request id")
        + 2;
    (bytes, at)
}

fn get_bulk() -> Vec<u8> {
    let names: Vec<_> = (0..50)
        .map(|i| oid(&format!("1.3.6.1.2.1.1.{i}")))
        .collect();
    let vbs: Vec<VarBind<'_>> = names
        .iter()
        .map(|o| VarBind {
            name: o.as_oid(),
            value: Value::Null,
        })
        .collect();
    encode::to_vec(
        &Message::pdu(Version::V2c, b"public", PduType::GET_BULK_REQUEST, 9, &vbs)
            .with_error(0, 64),
    )
}

/// One flood: from `sockets` in turn, to `to`, `payload` (its request id patched at
/// `id_at` if given), flat out until `stop`, `count` or the time limit.
fn flood(
    sockets: Vec<UdpSocket>,
    to: SocketAddr,
    payload: Vec<u8>,
    id_at: Option<usize>,
    count: u64,
    limit: Duration,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(u64, f64)> {
    std::thread::spawn(move || {
        let start = Instant::now();
        let mut batch = SendBatch::new();
        let mut sent = 0u64;
        let mut turn = 0usize;
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut p = payload;
        while sent < count && start.elapsed() < limit && !stop.load(Ordering::Relaxed) {
            for _ in 0..64 {
                if let Some(at) = id_at {
                    // xorshift: a fresh 31-bit id, four octets, every datagram.
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let id = (seed as u32 & 0x7fff_ffff) | 0x0100_0000;
                    p[at..at + 4].copy_from_slice(&id.to_be_bytes());
                }
                batch.push(to, &p);
            }
            let socket = &sockets[turn % sockets.len()];
            let (n, _) = batch.flush(socket.as_raw_fd());
            sent += n as u64;
            turn += 1;
        }
        (sent, start.elapsed().as_secs_f64())
    })
}

/// A reportable SNMPv3 discovery probe (no engine, no user): what asks for a Report.
fn discovery_probe() -> Vec<u8> {
    let mut out = Vec::new();
    trapgate::wire::v3::discovery_probe(1, 65_507, &mut out);
    out
}

/// Forged v3 traps with a new engine ID each, from `sockets` in turn, flat out until
/// `stop`, `count` or the time limit (a few thousand made ahead, their engine IDs
/// patched in place).
fn engine_flood(
    sockets: Vec<UdpSocket>,
    to: SocketAddr,
    count: u64,
    limit: Duration,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(u64, f64)> {
    std::thread::spawn(move || {
        let ku = trapgate::wire::usm::password_to_key(
            trapgate::wire::usm::AuthProtocol::Sha256,
            b"a guess of the forger",
        );
        let made: Vec<Vec<u8>> = (0..4096u32)
            .map(|n| {
                trapgate::testing::v3_low_battery_keyed(
                    &ku,
                    &[0x80, 0, 0x1f, 0x88, 4, 0xf0, 0, (n >> 8) as u8, n as u8],
                )
            })
            .collect();
        // The engine ID's two middle octets, patched per round: new engines every time.
        let at = made[0]
            .windows(9)
            .position(|w| w[..7] == [0x80, 0, 0x1f, 0x88, 4, 0xf0, 0])
            .expect("the engine ID")
            + 6;
        let start = Instant::now();
        let mut batch = SendBatch::new();
        let (mut sent, mut turn, mut round) = (0u64, 0usize, 0u32);
        let mut made = made;
        while sent < count && start.elapsed() < limit && !stop.load(Ordering::Relaxed) {
            for p in made.iter_mut().skip((turn * 64) % 4096).take(64) {
                p[at] = round as u8;
                batch.push(to, p);
            }
            let socket = &sockets[turn % sockets.len()];
            let (n, _) = batch.flush(socket.as_raw_fd());
            sent += n as u64;
            turn += 1;
            if (turn * 64) % 4096 == 0 {
                round += 1;
            }
        }
        (sent, start.elapsed().as_secs_f64())
    })
}

/// A TCP connection to `to` from `from`, closed with a reset when dropped.
fn connect_from(from: Ipv4Addr, to: SocketAddr) -> Option<std::net::TcpStream> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
    s.bind(&SocketAddr::new(from.into(), 0).into()).ok()?;
    s.connect_timeout(&to.into(), Duration::from_secs(2)).ok()?;
    s.set_linger(Some(Duration::ZERO)).ok()?;
    Some(s.into())
}

/// A TCP flood from `from` to `to`: `what` is "connections" (opened flat out and held,
/// the oldest closed at 10,000 held), or the bytes each of 16 connections writes again
/// and again (their answers read and thrown away). Returns (connections or writes,
/// seconds).
fn tcp_flood(
    from: Ipv4Addr,
    to: SocketAddr,
    what: Option<Vec<u8>>,
    count: u64,
    limit: Duration,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(u64, f64)> {
    std::thread::spawn(move || {
        let start = Instant::now();
        let going = || start.elapsed() < limit && !stop.load(Ordering::Relaxed);
        let Some(bytes) = what else {
            let mut held = std::collections::VecDeque::new();
            let mut made = 0u64;
            while made < count && going() {
                if let Some(c) = connect_from(from, to) {
                    held.push_back(c);
                    made += 1;
                }
                if held.len() > 10_000 {
                    held.pop_front();
                }
            }
            return (made, start.elapsed().as_secs_f64());
        };
        let writes = Arc::new(AtomicU64::new(0));
        let writers: Vec<_> = (0..16)
            .filter_map(|_| connect_from(from, to))
            .map(|mut c| {
                let (bytes, writes, stop) = (bytes.clone(), Arc::clone(&writes), Arc::clone(&stop));
                let mut reader = c.try_clone().expect("clone");
                std::thread::spawn(move || {
                    let drain = std::thread::spawn(move || {
                        let mut buf = [0u8; 65536];
                        let _ = reader.set_read_timeout(Some(Duration::from_millis(200)));
                        loop {
                            match reader.read(&mut buf) {
                                Ok(0) => break,
                                Ok(_) => {}
                                Err(e)
                                    if e.kind() == std::io::ErrorKind::WouldBlock
                                        || e.kind() == std::io::ErrorKind::TimedOut =>
                                {
                                    if stop.load(Ordering::Relaxed) {
                                        break;
                                    }
                                }
                                Err(_) => break,
                            }
                        }
                    });
                    let _ = c.set_write_timeout(Some(Duration::from_millis(200)));
                    while start.elapsed() < limit && writes.load(Ordering::Relaxed) < count {
                        match c.write_all(&bytes) {
                            Ok(()) => {
                                writes.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e)
                                if e.kind() == std::io::ErrorKind::WouldBlock
                                    || e.kind() == std::io::ErrorKind::TimedOut => {}
                            Err(_) => break,
                        }
                        if stop_flag(&writes, count) {
                            break;
                        }
                    }
                    let _ = c.shutdown(std::net::Shutdown::Both);
                    let _ = drain.join();
                })
            })
            .collect();
        while going() && writes.load(Ordering::Relaxed) < count {
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            let _ = w.join();
        }
        (
            writes.load(Ordering::Relaxed),
            start.elapsed().as_secs_f64(),
        )
    })
}

fn stop_flag(writes: &AtomicU64, count: u64) -> bool {
    writes.load(Ordering::Relaxed) >= count
}

/// The UPSes' cards: every get-request answered with the objects asked, on line and
/// full (the gateway's polls, which must never be confused with the forgeries).
fn answer_polls(cards: Vec<UdpSocket>, done: &AtomicBool, count: &AtomicU64) -> u64 {
    use bumpalo::Bump;
    use trapgate::wire::Pdu;
    let (mut poll, socks) = registered(cards);
    let mut events = mio::Events::with_capacity(256);
    let mut buf = [0u8; 2048];
    let mut answered = 0;
    while !done.load(Ordering::Relaxed) {
        let _ = poll.poll(&mut events, Some(Duration::from_millis(20)));
        for e in events.iter() {
            let i = e.token().0;
            while let Ok((len, from)) = socks[i].recv_from(&mut buf) {
                let arena = Bump::new();
                let Ok(m) = Message::parse(&buf[..len], &arena) else {
                    continue;
                };
                let Pdu::Request(r) = m.pdu else { continue };
                if r.kind != PduType::GET_REQUEST {
                    continue;
                }
                let vbs: Vec<VarBind<'_>> = r
                    .varbinds
                    .iter()
                    .map(|vb| VarBind {
                        name: vb.name,
                        value: match vb.name.to_buf().to_string().as_str() {
                            "1.3.6.1.4.1.318.1.1.1.4.1.1.0" => Value::Integer(2),
                            "1.3.6.1.4.1.318.1.1.1.2.1.1.0" => Value::Integer(2),
                            "1.3.6.1.4.1.318.1.1.1.2.2.1.0" => Value::Gauge32(100),
                            _ => Value::TimeTicks(120_000),
                        },
                    })
                    .collect();
                let reply = Message::pdu(
                    m.version,
                    m.community,
                    PduType::RESPONSE,
                    r.request_id,
                    &vbs,
                );
                if socks[i].send_to(&encode::to_vec(&reply), from).is_ok() {
                    answered += 1;
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
    answered
}

/// `sockets`, non-blocking, registered with a poller of their own (token = index).
fn registered(sockets: Vec<UdpSocket>) -> (mio::Poll, Vec<mio::net::UdpSocket>) {
    use mio::{Interest, Poll, Token};
    let poll = Poll::new().expect("poll");
    let mut socks: Vec<mio::net::UdpSocket> = sockets
        .into_iter()
        .map(|s| {
            s.set_nonblocking(true).expect("nonblocking");
            mio::net::UdpSocket::from_std(s)
        })
        .collect();
    for (i, s) in socks.iter_mut().enumerate() {
        poll.registry()
            .register(s, Token(i), Interest::READABLE)
            .expect("register");
    }
    (poll, socks)
}

fn bind_all(addrs: impl Iterator<Item = Ipv4Addr>, port: u16) -> Vec<UdpSocket> {
    addrs
        .map(|a| UdpSocket::bind((a, port)).unwrap_or_else(|e| panic!("bind {a}:{port}: {e}")))
        .collect()
}

fn scrape(addr: &str) -> HashMap<String, f64> {
    let mut page = String::new();
    if let Ok(mut s) = std::net::TcpStream::connect(addr) {
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n");
        let _ = s.read_to_string(&mut page);
    }
    page.lines()
        .filter(|l| l.starts_with("trapgate_"))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// The metrics once the gateway has published everything it counted (its workers
/// publish twice a second, its snapshot once a second): scraped until three scrapes
/// over two seconds agree on `key`, and `key` has reached at least `min`.
fn settled(addr: &str, key: &str, min: f64) -> HashMap<String, f64> {
    let mut seen: Vec<HashMap<String, f64>> = Vec::new();
    for _ in 0..30 {
        let now = scrape(addr);
        if now.get(key).is_some_and(|v| *v >= min) {
            seen.push(now);
        }
        let n = seen.len();
        if n >= 3 && seen[n - 1].get(key) == seen[n - 3].get(key) {
            return seen.pop().expect("three scrapes");
        }
        std::thread::sleep(Duration::from_millis(1000));
    }
    seen.pop().unwrap_or_default()
}

fn sum_prefix(m: &HashMap<String, f64>, prefix: &str) -> f64 {
    m.iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(_, v)| *v)
        .sum()
}

/// The kernel's own counts of UDP datagrams dropped on receive (every socket of the
/// namespace: RcvbufErrors in /proc/net/snmp) and of packets its backlog queues dropped
/// before any socket (/proc/net/softnet_stat).
fn kernel_counts() -> (u64, u64) {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp: "));
    let (names, values) = (udp.next().unwrap_or(""), udp.next().unwrap_or(""));
    let rcvbuf = names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let softnet = std::fs::read_to_string("/proc/net/softnet_stat")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| u64::from_str_radix(l.split_whitespace().nth(1)?, 16).ok())
        .sum();
    (rcvbuf, softnet)
}

/// The journal's records: (time, what: its input, decision or action).
fn journal_records(p: &PathBuf) -> Vec<(u64, String)> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l.split_once(' ')?.1).ok()?;
            let what = ["input", "decision", "action"]
                .iter()
                .find_map(|k| v[k].as_str())?
                .to_string();
            Some((v["t"].as_u64()?, what))
        })
        .collect()
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let phases: Vec<&str> = PHASES
        .iter()
        .copied()
        .filter(|p| *p == "idle" || args.phases.is_empty() || args.phases.iter().any(|x| x == p))
        .collect();
    let n = args.tries * phases.len();
    // The recorders: the tool's own sockets, read by one thread.
    let recorders: Vec<UdpSocket> = bind_all((0..n).map(recorder_addr), 0);
    let ports: Vec<u16> = recorders
        .iter()
        .map(|s| s.local_addr().expect("addr").port())
        .collect();
    let dir = std::env::temp_dir().join(format!("trapflood-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let site_file = dir.join("site.toml");
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port()
    };
    let (nut_port, nis_port) = (free_port(), free_port());
    let nut_at: SocketAddr = SocketAddr::from(([127, 0, 0, 1], nut_port));
    let nis_at: SocketAddr = SocketAddr::from(([127, 0, 0, 1], nis_port));
    std::fs::write(&site_file, site(&ports, nut_port, nis_port)).expect("write the site");
    let journal = dir.join("journal");
    let mut child = Command::new(&args.trapgate)
        .args(["run", "--config"])
        .arg(&site_file)
        .args(["--metrics", "127.0.0.1:0", "--journal"])
        .arg(&journal)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", args.trapgate.display()));
    let mut err = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    err.read_line(&mut line).expect("the listening line");
    let field = |after: &str| -> SocketAddr {
        line.split(after)
            .nth(1)
            .and_then(|r| r.split([' ', ',', ';', ')', '\n']).next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no {after:?} in {line:?}"))
    };
    let (traps, agent, polls) = (
        field("listening on "),
        field("virtual UPS on "),
        field("polls from "),
    );
    let mut m_line = String::new();
    err.read_line(&mut m_line).expect("the metrics line");
    let metrics = m_line
        .split("http://")
        .nth(1)
        .and_then(|r| r.trim().strip_suffix("/metrics"))
        .expect("the metrics address")
        .to_string();
    let said = std::thread::spawn(move || err.lines().map_while(Result::ok).collect::<Vec<_>>());
    let out = BufReader::new(child.stdout.take().expect("stdout"));
    let decided = std::thread::spawn(move || {
        out.lines()
            .map_while(Result::ok)
            .filter(|l| l.contains("\"decision\":\"") || l.contains("\"action\":\"Back\""))
            .collect::<Vec<String>>()
    });
    // Every UPS's card, answering the gateway's polls truly: on line, charge 100 %.
    let cards: Vec<UdpSocket> = bind_all((0..n).map(ups_addr), CARD_PORT);
    let card_clones: Vec<UdpSocket> = cards
        .iter()
        .map(|c| c.try_clone().expect("a card socket to forge from"))
        .collect();
    let cards_done = Arc::new(AtomicBool::new(false));
    let card_answers = Arc::new(AtomicU64::new(0));
    let card_thread = {
        let (done, count) = (Arc::clone(&cards_done), Arc::clone(&card_answers));
        std::thread::spawn(move || answer_polls(cards, &done, &count))
    };
    // Every recorder's first order, timed on arrival.
    let arrived: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
    let t0 = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (arrived, done) = (Arc::clone(&arrived), Arc::clone(&done));
        std::thread::spawn(move || {
            let (mut poll, socks) = registered(recorders);
            let mut events = mio::Events::with_capacity(256);
            let mut buf = [0u8; 2048];
            while !done.load(Ordering::Relaxed) {
                let _ = poll.poll(&mut events, Some(Duration::from_millis(20)));
                for e in events.iter() {
                    let i = e.token().0;
                    while socks[i].recv_from(&mut buf).is_ok() {
                        let at = t0.elapsed().as_nanos() as u64;
                        let _ =
                            arrived[i].compare_exchange(0, at, Ordering::SeqCst, Ordering::SeqCst);
                    }
                }
            }
        })
    };
    // Wait for the gateway to have taken every UPS's first answer.
    let _ = settled(&metrics, "trapgate_poll_answers_total", n as f64);
    println!(
        "trapflood: {} UPSes and recorders on loopback; traps to {traps}, virtual UPS {agent}, polls from {polls}",
        n
    );
    println!(
        "{:<15} {:>10} {:>10} {:>9} {:>9} {:>10} {:>8} {:>8} {:>8}",
        "phase", "sent", "per s", "k-drops", "refused", "answered", "p50 ms", "p99 ms", "max ms"
    );
    let mut all_forged = 0u64;
    let mut ok = true;
    let mut idle_p99 = 0.0;
    let mut windows: Vec<(u64, u64)> = Vec::new();
    let mut report: Vec<String> = Vec::new();
    for (k, phase) in phases.iter().enumerate() {
        let before = settled(&metrics, "trapgate_decisions_total", 0.0);
        let phase_start = wall_ns();
        let kernel0 = kernel_counts();
        let cards0 = card_answers.load(Ordering::Relaxed);
        let stop = Arc::new(AtomicBool::new(false));
        let limit = Duration::from_secs(args.max_seconds);
        let ups_all = || (0..n).map(ups_addr);
        let recorders_all = || (0..n).map(recorder_addr);
        let flooding = match *phase {
            "idle" => None,
            "forged-answers" => {
                let (p, at) = deadly_answer();
                // From the cards' own sockets: their address and port, their community.
                let sockets = card_clones
                    .iter()
                    .map(|c| c.try_clone().expect("a card socket"))
                    .collect();
                Some(flood(
                    sockets,
                    polls,
                    p,
                    Some(at),
                    args.count,
                    limit,
                    Arc::clone(&stop),
                ))
            }
            "forged-acks" => {
                let ack = encode::to_vec(&Message::trap_v1(
                    b"wrong",
                    oid("1.3.6.1.4.1.50001").as_oid(),
                    [127, 11, 0, 1],
                    200,
                    1,
                    &[],
                ));
                Some(flood(
                    bind_all(recorders_all(), 0),
                    traps,
                    ack,
                    None,
                    args.count,
                    limit,
                    Arc::clone(&stop),
                ))
            }
            "refused-traps" => Some(flood(
                bind_all(ups_all(), 0),
                traps,
                apc_trap(b"wrong", 7, ups_addr(0)),
                None,
                args.count,
                limit,
                Arc::clone(&stop),
            )),
            "getbulk" => Some(flood(
                bind_all(recorders_all(), 0),
                agent,
                get_bulk(),
                None,
                args.count,
                limit,
                Arc::clone(&stop),
            )),
            "foreign" => Some(flood(
                bind_all((0..64).map(|i| Ipv4Addr::new(127, 20, 0, i + 1)), 0),
                traps,
                apc_trap(b"public", 7, Ipv4Addr::new(127, 20, 0, 1)),
                None,
                args.count,
                limit,
                Arc::clone(&stop),
            )),
            "v3-reports" => Some(flood(
                bind_all(ups_all(), 0),
                traps,
                discovery_probe(),
                None,
                args.count,
                limit,
                Arc::clone(&stop),
            )),
            "v3-engines" => Some(engine_flood(
                bind_all(ups_all(), 0),
                traps,
                args.count,
                limit,
                Arc::clone(&stop),
            )),
            "nut-connections" => Some(tcp_flood(
                NUT_RECORDER,
                nut_at,
                None,
                args.count.min(100_000),
                limit,
                Arc::clone(&stop),
            )),
            "nis-connections" => Some(tcp_flood(
                NIS_RECORDER,
                nis_at,
                None,
                args.count.min(100_000),
                limit,
                Arc::clone(&stop),
            )),
            "nut-logins" => Some(tcp_flood(
                NUT_RECORDER,
                nut_at,
                Some(b"USERNAME monuser\nPASSWORD guess\nLOGIN ups\n".repeat(64)),
                args.count,
                limit,
                Arc::clone(&stop),
            )),
            "nis-status" => Some(tcp_flood(
                NIS_RECORDER,
                nis_at,
                Some([0u8, 6, b's', b't', b'a', b't', b'u', b's'].repeat(64)),
                args.count,
                limit,
                Arc::clone(&stop),
            )),
            other => panic!("unknown phase {other}"),
        };
        if flooding.is_some() {
            std::thread::sleep(Duration::from_millis(500));
        }
        let started = Instant::now();
        let mut h = Histogram::<u64>::new_with_bounds(1_000, 60_000_000_000, 3).expect("bounds");
        let mut missed = 0;
        for t in 0..args.tries {
            let i = k * args.tries + t;
            let sender = UdpSocket::bind((ups_addr(i), 0)).expect("a UPS's socket");
            let trap = apc_trap(b"public", 7, ups_addr(i));
            let sent_at = t0.elapsed().as_nanos() as u64;
            sender.send_to(&trap, traps).expect("send the real trap");
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let at = arrived[i].load(Ordering::SeqCst);
                if at != 0 {
                    h.saturating_record(at.saturating_sub(sent_at).max(1_000));
                    break;
                }
                if Instant::now() > deadline {
                    missed += 1;
                    break;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Ordering::Relaxed);
        let (sent, secs) = flooding
            .map(|f| f.join().expect("the flood"))
            .unwrap_or((0, started.elapsed().as_secs_f64()));
        let elapsed = started.elapsed().as_secs_f64() + if sent > 0 { 0.5 } else { 0.0 };
        windows.push((phase_start, wall_ns()));
        // At least what this phase's real traps made: a decision each, and one datagram.
        let received_min = before
            .get("trapgate_datagrams_total")
            .copied()
            .unwrap_or(0.0)
            + (args.tries - missed) as f64;
        let _ = settled(&metrics, "trapgate_datagrams_total", received_min);
        let after = settled(&metrics, "trapgate_datagrams_total", received_min);
        let kernel1 = kernel_counts();
        let cards = card_answers.load(Ordering::Relaxed) - cards0;
        let delta = |key: &str| {
            after.get(key).copied().unwrap_or(0.0) - before.get(key).copied().unwrap_or(0.0)
        };
        let delta_sum = |prefix: &str| sum_prefix(&after, prefix) - sum_prefix(&before, prefix);
        let kernel = delta("trapgate_dropped_total{reason=\"kernel_receive_buffer\"}");
        let refused = delta_sum("trapgate_refused_total{");
        let foreign = delta("trapgate_dropped_total{reason=\"source_not_in_site\"}");
        let answered = delta("trapgate_agent_answers_total");
        let believed = delta("trapgate_poll_answers_total");

        let (p50, p99, max) = (
            h.value_at_quantile(0.5) as f64 / 1e6,
            h.value_at_quantile(0.99) as f64 / 1e6,
            h.max() as f64 / 1e6,
        );
        if *phase == "idle" {
            idle_p99 = p99;
        }
        println!(
            "{:<15} {:>10} {:>10.0} {:>9.0} {:>9.0} {:>10.0} {:>8.2} {:>8.2} {:>8.2}",
            phase,
            sent,
            sent as f64 / secs.max(1e-9),
            kernel,
            refused,
            answered,
            p50,
            p99,
            max,
        );
        report.push(format!("{phase} {elapsed}"));
        // Every datagram the flood sent is counted once: dropped by the kernel (the
        // gateway reads its sockets' counters), refused, answered (GetBulk) or dropped as
        // foreign. The poll socket also gets the cards' real answers: believed, or refused
        // when late (a retry's answer after the first was taken).
        let reports =
            delta("trapgate_usm_reports_total") + delta("trapgate_usm_reports_held_total");
        let accounted = match *phase {
            "idle" => true,
            // A discovery probe is answered within the Reports' budget or held back: each
            // counted one or the other.
            "v3-reports" => reports + kernel == sent as f64,
            // Not datagrams: connections and writes, shown in the table.
            "nut-connections" | "nis-connections" | "nut-logins" | "nis-status" => true,
            "getbulk" => answered + refused + kernel == sent as f64,
            "foreign" => foreign + kernel == sent as f64,
            // The cards go on answering while the counts settle: their answers are
            // believed, or refused when late; the forgeries are all refused.
            "forged-answers" => {
                let late = refused + kernel - sent as f64;
                (0.0..=cards as f64).contains(&late) && believed > 0.0
            }
            _ => refused + kernel == sent as f64,
        };
        let other_drops = (kernel1.0 - kernel0.0) as f64 - kernel;
        if other_drops > 0.0 || kernel1.1 > kernel0.1 {
            println!(
                "   the kernel dropped {other_drops} datagrams on other sockets and {} in its backlog",
                kernel1.1 - kernel0.1
            );
        }
        if !accounted {
            println!(
                "   NOT ACCOUNTED FOR: sent {sent}, kernel drops {kernel}, refused {refused}, answered {answered}, foreign {foreign}"
            );
            let mut keys: Vec<&String> = after.keys().collect();
            keys.sort();
            for key in keys {
                let d = delta(key);
                if d != 0.0 && !key.contains("latency") {
                    println!("     {key} {d}");
                }
            }
            ok = false;
        }
        if missed > 0 {
            println!("   {missed} real traps were not acted on within 5 s");
            ok = false;
        }
        if *phase == "v3-reports" {
            println!(
                "   Reports sent {}, held back by their budget {}",
                delta("trapgate_usm_reports_total"),
                delta("trapgate_usm_reports_held_total")
            );
        }
        if phase.starts_with("nut") || phase.starts_with("nis") {
            let server = if phase.starts_with("nut") {
                "nut"
            } else {
                "nis"
            };
            println!(
                "   {server}: open now {}, evicted {}, wrong passwords {}, lines {}, requests {}",
                after
                    .get(&format!("trapgate_tcp_connections{{server=\"{server}\"}}"))
                    .copied()
                    .unwrap_or(0.0),
                delta(&format!(
                    "trapgate_tcp_connections_evicted_total{{server=\"{server}\"}}"
                )),
                delta("trapgate_refused_total{reason=\"nut_wrong_password\"}"),
                delta("trapgate_nut_lines_total"),
                delta("trapgate_nis_requests_total"),
            );
        }
        if *phase != "idle" && *phase != "getbulk" {
            all_forged += sent;
        }
        if *phase != "idle" {
            println!("   p99 {:+.2} ms against idle", p99 - idle_p99);
        }
    }
    done.store(true, Ordering::Relaxed);
    let _ = reader.join();
    cards_done.store(true, Ordering::Relaxed);
    let answered = card_thread.join().expect("the cards");
    println!("the cards answered {answered} polls");
    // SIGTERM: the gateway stops cleanly and its stdout ends.
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
    let decisions = decided.join().expect("the decisions");
    // The gateway's own view: kernel arrival to the orders' sendmmsg, over every phase.
    for l in said.join().expect("stderr") {
        if l.contains("latency shutdown orders sent") || l.contains("latency LowBattery") {
            println!("gateway:{}", l.trim_start_matches(' '));
        }
    }
    // The journal, phase by phase: what the flood made it write, beside the real traps'.
    let records = journal_records(&journal);
    for ((from, to), line) in windows.iter().zip(&report) {
        let (phase, secs) = line.split_once(' ').expect("phase and seconds");
        let secs: f64 = secs.parse().unwrap_or(1.0);
        let mut kinds: HashMap<&str, usize> = HashMap::new();
        for (_, what) in records.iter().filter(|(t, _)| (*from..*to).contains(t)) {
            *kinds.entry(what.as_str()).or_default() += 1;
        }
        let total: usize = kinds.values().sum();
        let refused = kinds.get("Refused").copied().unwrap_or(0);
        let presented = kinds.get("Presented").copied().unwrap_or(0);
        println!(
            "journal, {phase}: {total} records in {secs:.1} s: {refused} refusal summaries, {presented} values presented, {} the real traps' decisions and orders",
            total - refused - presented
        );
    }
    // Every shutdown is a real trap's: the recorder of a tried UPS, for its lowBattery.
    let tried: Vec<String> = (0..n)
        .map(|i| format!("\"recorder\":\"nvr-{i}\""))
        .collect();
    let shutdowns: Vec<&String> = decisions
        .iter()
        .filter(|d| d.contains("\"decision\":\"ShutdownRecorder\""))
        .collect();
    let forged: Vec<&String> = decisions
        .iter()
        .filter(|d| {
            (d.contains("ShutdownRecorder") && !d.contains("\"rule\":\"lowBattery\""))
                || d.contains("\"decision\":\"Acknowledged\"")
                || d.contains("\"action\":\"Back\"")
        })
        .collect();
    let real = shutdowns
        .iter()
        .filter(|d| tried.iter().any(|t| d.contains(t.as_str())))
        .count();
    println!(
        "decisions: {} shutdowns for {n} real traps ({real} of tried UPSes); forged datagrams sent: {all_forged}; decisions they caused: {}",
        shutdowns.len(),
        forged.len()
    );
    for f in &forged {
        println!("   FORGED: {f}");
    }
    if std::env::var_os("TRAPFLOOD_KEEP").is_some() {
        println!("kept {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    if ok && forged.is_empty() && real == n && shutdowns.len() == n {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(1)
    }
}
