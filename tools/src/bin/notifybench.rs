//! notifybench: what telling the site's other systems (`[[notify]]`) costs a real trap's
//! order, on loopback.
//!
//! Two gateways of the same loopback site (`--tries` UPSes at 127.10.x.y, a recorder
//! each at 127.11.x.y, all tier 1), started in turn, trial by trial: one with no
//! `[[notify]]`, one with four targets taking every record (`match = ["all"]`): a
//! syslog server over UDP (a socket that reads all), XProtect's event server (a TCP
//! listener that reads all), a dead one (a TCP port where nothing listens: every
//! connection refused) and a slow one (syslog over TCP to a listener that reads 10
//! messages a second: its queue fills and drops). In each, `--tries` real APC
//! lowBattery traps leave fresh UPSes one at a time, each timed from its sending to the
//! kernel's receipt of the order at its recorder's socket (SO_TIMESTAMPNS). It prints both runs' p50 / p99 /
//! p99.9 and the difference of the p99s, and the gateway's CPU time (utime + stime) per
//! record and target beyond the run without targets.
//!
//! Run: `cargo build --release && cargo run --release -p trapgate-tools --bin
//! notifybench`. Loopback only; every run is bounded in count and time.

use std::io::Read;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use std::os::fd::AsRawFd;

use clap::Parser;
use hdrhistogram::Histogram;
use trapgate::daemon::socket::{RecvBatch, bind_udp};
use trapgate_tools::wall_ns;
use trapgate_tools::{spawn_listening_at, stop};

#[derive(Parser)]
#[command(
    about = "Times real traps' orders with four notify targets (one dead, one slow) and without"
)]
struct Args {
    /// The trapgate binary.
    #[arg(long, default_value = "target/release/trapgate")]
    trapgate: PathBuf,
    /// Real traps per run.
    #[arg(long, default_value_t = 200)]
    tries: usize,
    /// Runs of each kind, taking turns.
    #[arg(long, default_value_t = 3)]
    trials: usize,
    /// Only this one of the four targets (0 syslog UDP, 1 XProtect, 2 dead, 3 slow).
    #[arg(long)]
    only: Option<usize>,
}

fn ups_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 10, (i / 250) as u8, (i % 250) as u8 + 1)
}

fn recorder_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 11, (i / 250) as u8, (i % 250) as u8 + 1)
}

fn site(ports: &[u16], notify: &str) -> String {
    let mut s = String::from(
        "[gateway]\nlisten = [\"127.0.0.1:0\"]\nagent = \"127.0.0.1:0\"\ncommunity = \"public\"\n\n\
         [policy]\ngrace = { 1 = \"1h\" }\nshutdown_below_charge = 30\nshutdown_below_runtime = \"5m\"\n\
         confirm_by_poll = false\nack_timeout = \"10m\"\n",
    );
    for (i, port) in ports.iter().enumerate() {
        s += &format!(
            "\n[[ups]]\nname = \"ups-{i}\"\naddress = \"{}\"\ncommunity = \"public\"\nvendor = \"apc\"\n\
             poll_interval = \"1h\"\noutlet_off_delay = \"1h\"\n\
             \n[[recorder]]\nname = \"nvr-{i}\"\naddress = \"{}\"\nport = {port}\nups = \"ups-{i}\"\n\
             tier = 1\nshutdown_time = \"90s\"\n",
            ups_addr(i),
            recorder_addr(i),
        );
    }
    s + notify
}

/// A TCP listener that reads what comes, `per_second` messages' worth a second at most
/// (0: as fast as it comes), until `done`.
fn reader(per_second: u32, done: Arc<AtomicBool>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().unwrap().port();
    l.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let mut conns = Vec::new();
        let mut buf = [0u8; 65536];
        while !done.load(Ordering::Relaxed) {
            if let Ok((c, _)) = l.accept() {
                c.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
                conns.push(c);
            }
            for c in &mut conns {
                if per_second == 0 {
                    while c.read(&mut buf).is_ok_and(|n| n > 0) {}
                } else {
                    // About one 300-byte message each 1/per_second s.
                    let _ = c.read(&mut buf[..300]);
                }
            }
            if per_second > 0 {
                std::thread::sleep(Duration::from_millis(1000 / u64::from(per_second)));
            }
        }
    });
    port
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command's closing parenthesis: fields 14 and 15 are utime and stime.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    f.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
}

struct Run {
    latency: Histogram<u64>,
    cpu_ms: f64,
}

fn run(args: &Args, notify: &str, dir: &std::path::Path) -> Run {
    // The recorders' sockets note the kernel's receive time of each order
    // (SO_TIMESTAMPNS): what a recorder's host sees, not when this process is scheduled
    // to read it (the targets' threads share its two cores).
    let recorders: Vec<UdpSocket> = (0..args.tries)
        .map(|i| bind_udp(std::net::SocketAddr::from((recorder_addr(i), 0))).expect("recorder"))
        .collect();
    let ports: Vec<u16> = recorders
        .iter()
        .map(|s| s.local_addr().unwrap().port())
        .collect();
    let file = dir.join("site.toml");
    std::fs::write(&file, site(&ports, notify)).expect("site");
    let (mut gw, traps, _said) = spawn_listening_at(Command::new(&args.trapgate).args([
        "run",
        "--config",
        file.to_str().unwrap(),
    ]));
    std::thread::sleep(Duration::from_millis(300));
    let cpu0 = cpu_ticks(gw.id());
    let mut latency = Histogram::<u64>::new(3).unwrap();
    let mut batch = RecvBatch::new();
    for (i, rec) in recorders.iter().enumerate() {
        let ups = UdpSocket::bind((ups_addr(i), 0)).expect("ups");
        let trap =
            trapgate::testing::v1_trap(b"public", "1.3.6.1.4.1.318", ups_addr(i).octets(), 7, &[]);
        let sent = wall_ns();
        ups.send_to(&trap, traps).expect("trap");
        let until = Instant::now() + Duration::from_secs(2);
        let arrived = loop {
            match batch.recv(rec.as_raw_fd()) {
                Ok(n) if n > 0 => break batch.arrival(0),
                _ if Instant::now() > until => break None,
                _ => std::thread::sleep(Duration::from_micros(20)),
            }
        };
        match arrived {
            Some(at) => latency
                .record(at.saturating_sub(sent).max(1))
                .expect("in range"),
            None => eprintln!("try {i}: no order within 2 s"),
        }
        // One at a time, apart: each trap's order alone on the gateway.
        std::thread::sleep(Duration::from_millis(5));
    }
    let ticks = cpu_ticks(gw.id()) - cpu0;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    stop(&mut gw);
    Run {
        latency,
        cpu_ms: ticks as f64 * 1000.0 / hz,
    }
}

fn us(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

fn main() {
    let args = Args::parse();
    let dir = std::env::temp_dir().join(format!("trapgate-notifybench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let done = Arc::new(AtomicBool::new(false));
    let syslog = UdpSocket::bind("127.0.0.1:0").unwrap();
    let syslog_port = syslog.local_addr().unwrap().port();
    {
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            syslog
                .set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let mut buf = [0u8; 65536];
            while !done.load(Ordering::Relaxed) {
                let _ = syslog.recv(&mut buf);
            }
        });
    }
    let xprotect = reader(0, Arc::clone(&done));
    let slow = reader(10, Arc::clone(&done));
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let notify = format!(
        "\n[[notify]]\nkind = \"syslog\"\nto = \"127.0.0.1:{syslog_port}\"\nmatch = [\"all\"]\n\
         \n[[notify]]\nkind = \"milestone\"\nto = \"127.0.0.1:{xprotect}\"\nmatch = [\"all\"]\n\
         \n[[notify]]\nkind = \"milestone\"\nto = \"127.0.0.1:{dead}\"\nmatch = [\"all\"]\n\
         \n[[notify]]\nkind = \"syslog\"\ntransport = \"tcp\"\nto = \"127.0.0.1:{slow}\"\nmatch = [\"all\"]\n"
    );
    let notify = match args.only {
        Some(k) => notify
            .split("\n[[notify]]")
            .filter(|p| !p.trim().is_empty())
            .nth(k)
            .map(|p| format!("\n[[notify]]{p}"))
            .expect("--only 0 to 3"),
        None => notify,
    };
    println!(
        "{} real traps a run, {} runs of each; trap sent -> its order received, loopback",
        args.tries, args.trials
    );
    let (mut bare, mut told) = (Vec::new(), Vec::new());
    for k in 0..args.trials {
        for (name, text, into) in [
            ("no targets", "", &mut bare),
            ("targets", notify.as_str(), &mut told),
        ] {
            {
                let r = run(&args, text, &dir);
                println!(
                    "trial {k} {name:>10}: p50 {:>7.1} us  p99 {:>7.1} us  p99.9 {:>7.1} us  cpu {:.0} ms",
                    us(&r.latency, 0.5),
                    us(&r.latency, 0.99),
                    us(&r.latency, 0.999),
                    r.cpu_ms
                );
                into.push(r);
            }
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let p99 = |runs: &[Run]| median(&mut runs.iter().map(|r| us(&r.latency, 0.99)).collect());
    let p50 = |runs: &[Run]| median(&mut runs.iter().map(|r| us(&r.latency, 0.5)).collect());
    let cpu = |runs: &[Run]| median(&mut runs.iter().map(|r| r.cpu_ms).collect());
    println!(
        "median of runs: no targets p50 {:.1} us p99 {:.1} us; with targets p50 {:.1} us p99 {:.1} us; p99 difference {:+.1} us",
        p50(&bare),
        p99(&bare),
        p50(&told),
        p99(&told),
        p99(&told) - p99(&bare)
    );
    // Each trap makes 3 records a target takes (the outage's alert, the shutdown, the
    // order sent).
    let targets = if args.only.is_some() { 1 } else { 4 };
    let records = (args.tries * 3 * targets) as f64;
    println!(
        "cpu: {:.0} ms without targets, {:.0} ms with {targets}: {:.2} us a record and target",
        cpu(&bare),
        cpu(&told),
        (cpu(&told) - cpu(&bare)) * 1000.0 / records
    );
    done.store(true, Ordering::Relaxed);
    let _ = std::fs::remove_dir_all(&dir);
}
