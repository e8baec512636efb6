//! takeover: how long a pair of gateways takes to go on when its actor's host dies in an
//! outage, and what the new actor's fan-out costs beside the floor.
//!
//! Each trial makes network namespaces of its own (`trapgate::testing::netns`: two
//! gateway hosts and the site on a bridge, 192.0.2.0/24, the recorders in 198.18.0.0/16,
//! the benchmarking range, local to the site's namespace), runs Debian's keepalived
//! (the README's configuration, `advert_int` as given) and `trapgate run` on both with
//! `--recorders` tier-1 recorders, waits until one of them holds the address, then kills
//! its host (keepalived's VRRP process, keepalived and trapgate with SIGKILL, its link
//! deleted) and sends lowBattery to the other, the standby, which decides every shutdown and
//! sends nothing until keepalived gives it the address. A sink in the site's namespace
//! notes the kernel's receive time (SO_TIMESTAMPNS) of every order. Per trial:
//! take-over (the kill to the first order of the new actor) and the new actor's
//! fan-out (its first order to its last), and beside it, from its namespace in the
//! same trial, the floor: a bare `sendmmsg` of as many datagrams of the same size to
//! the same recorders, first to last at the same sink. Then, in this process, the
//! shipping's own cost per acknowledged recorder: the actor's packing and sealing, the
//! standby's check, reading and applying (`Station::handle_peer_record`).
//!
//! Run (root, keepalived installed): `cargo build --release && cargo run --release -p
//! trapgate-tools --bin takeover -- --advert 1 --advert 0.1`.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use trapgate::daemon::socket::{RecvBatch, SendBatch, bind_udp};
use trapgate::testing::netns::{self, in_namespace};
use trapgate_tools::wall_ns;

#[derive(Parser)]
#[command(about = "Times a pair's take-over when its actor dies mid-outage")]
struct Args {
    /// The trapgate binary.
    #[arg(long, default_value = "target/release/trapgate")]
    trapgate: PathBuf,
    /// Recorders, all tier 1.
    #[arg(long, default_value_t = 5000)]
    recorders: usize,
    /// Trials per advert interval.
    #[arg(long, default_value_t = 5)]
    trials: usize,
    /// keepalived's advert_int (seconds; below 1: VRRPv3); repeat for several.
    #[arg(long = "advert")]
    adverts: Vec<String>,
}

const ADDRESS: &str = "192.0.2.100";
const UPS: &str = "192.0.2.250";

fn recorder(i: usize) -> [u8; 4] {
    [198, 18, (i / 250) as u8, (i % 250) as u8 + 1]
}

fn site(n: usize, key: &std::path::Path) -> String {
    let mut s = format!(
        r#"[gateway]
listen = ["0.0.0.0:162"]
agent = "0.0.0.0:161"
community = "public"
http = "127.0.0.1:9162"

[policy]
grace = {{ 1 = "10m" }}
shutdown_below_charge = 30
shutdown_below_runtime = "5m"
confirm_by_poll = false
ack_timeout = "60s"

[[ups]]
name = "ups-main"
address = "{UPS}"
community = "public"
vendor = "apc"
poll_interval = "1h"
outlet_off_delay = "10m"

[pair]
self = "192.0.2.1:1620"
peer = "192.0.2.2:1620"
address = "{ADDRESS}"
key_file = "{}"
"#,
        key.display()
    );
    for i in 0..n {
        let [a, b, c, d] = recorder(i);
        s.push_str(&format!(
            "\n[[recorder]]\nname = \"nvr-{i}\"\naddress = \"{a}.{b}.{c}.{d}\"\nups = \"ups-main\"\ntier = 1\nshutdown_time = \"90s\"\n"
        ));
    }
    s
}

/// Every order's kernel receive time (ns since the epoch), until `n` came or `stop`.
fn sink(n: usize, stop: Arc<AtomicBool>) -> Vec<u64> {
    let socket = trapgate_tools::sink_socket(SocketAddr::from(([0, 0, 0, 0], 162)));
    let mut batch = RecvBatch::new();
    let mut times = Vec::with_capacity(n);
    while times.len() < n && !stop.load(Ordering::Relaxed) {
        match batch.recv(socket.as_raw_fd()) {
            Ok(k) if k > 0 => {
                for i in 0..k {
                    times.push(batch.arrival(i).unwrap_or_else(wall_ns));
                }
            }
            _ => std::thread::sleep(Duration::from_micros(100)),
        }
    }
    times
}

fn low_battery() -> Vec<u8> {
    trapgate::testing::v1_trap(b"public", "1.3.6.1.4.1.318", [192, 0, 2, 250], 7, &[])
}

struct Trial {
    takeover_ms: f64,
    fanout_ms: f64,
    floor_ms: f64,
}

fn trial(args: &Args, advert: &str, k: usize) -> Option<Trial> {
    let tag = format!("tk{}{k}", std::process::id() % 10_000);
    let mut ns = netns::pair_site(&tag, &[UPS], true);
    let (a, b, s) = (
        ns.names[0].clone(),
        ns.names[1].clone(),
        ns.names[2].clone(),
    );
    let dir = std::env::temp_dir().join(format!("trapgate-takeover-{tag}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let key = dir.join("pair.key");
    std::fs::write(&key, "dGFrZW92ZXIgYmVuY2htYXJrIGtleQo=\n").expect("key");
    let site_file = dir.join("site.toml");
    std::fs::write(&site_file, site(args.recorders, &key)).expect("site");
    let trapgate = std::fs::canonicalize(&args.trapgate).expect("the trapgate binary");
    let trapgate = trapgate.to_str().expect("a path");
    let gateways: Vec<netns::Gateway> = [(&a, 150), (&b, 100)]
        .into_iter()
        .map(|(g, priority)| {
            netns::start_gateway(
                &mut ns,
                g,
                &dir,
                (trapgate, &site_file),
                (ADDRESS, priority, advert),
            )
        })
        .collect();
    // One of them holds the address (A, the higher priority, as a rule; with the
    // shortest intervals whichever keepalived wins first): that one dies.
    let until = Instant::now() + Duration::from_secs(30);
    let actor = 'found: loop {
        for (i, g) in gateways.iter().enumerate() {
            while let Ok(l) = g.err.try_recv() {
                if l.contains("came to this host") {
                    break 'found i;
                }
            }
        }
        if Instant::now() > until {
            let said: Vec<String> = gateways[0].keepalived.try_iter().collect();
            eprintln!(
                "trial {k}: neither took the address; A's keepalived said:\n{}",
                said.join("\n")
            );
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (dying, other) = [(&a, &b), (&b, &a)][actor];
    let other_ip = ["192.0.2.2", "192.0.2.1"][actor];
    let stop = Arc::new(AtomicBool::new(false));
    let n = args.recorders;
    let orders = {
        let stop = Arc::clone(&stop);
        in_namespace(&s, move || sink(n, stop))
    };
    std::thread::sleep(Duration::from_millis(200));
    let ups = in_namespace(&s, || UdpSocket::bind((UPS, 0)).expect("ups"))
        .join()
        .unwrap();
    // The actor's host dies; lowBattery reaches the other, the standby.
    let killed = wall_ns();
    let dying_processes: Vec<_> = ns.children.drain(2 * actor..2 * actor + 2).collect();
    netns::kill_host(dying, &gateways[actor].vrrp_pid, dying_processes);
    ups.send_to(&low_battery(), (other_ip, 162)).expect("trap");
    let watchdog = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(60));
            stop.store(true, Ordering::Relaxed);
        })
    };
    let times = orders.join().unwrap();
    drop(watchdog);
    if times.len() < n {
        eprintln!("trial {k}: {} of {n} orders came", times.len());
        return None;
    }
    let (first, last) = (times[0], *times.iter().max().unwrap());
    // The floor, from B's namespace to the same sink: as many datagrams of one order's
    // size, one sendmmsg after another.
    let stop = Arc::new(AtomicBool::new(false));
    let floor = {
        let stop = Arc::clone(&stop);
        in_namespace(&s, move || sink(n, stop))
    };
    std::thread::sleep(Duration::from_millis(200));
    let size = 83;
    let from: std::net::IpAddr = other_ip.parse().expect("an address");
    in_namespace(other, move || {
        let socket = bind_udp(SocketAddr::new(from, 0)).expect("bind");
        let mut batch = SendBatch::default();
        let bytes = vec![0x30u8; size];
        for i in 0..n {
            batch.push(SocketAddr::from((recorder(i), 162)), &bytes);
            if batch.len() == 1024 || i + 1 == n {
                let _ = batch.flush(socket.as_raw_fd());
            }
        }
    })
    .join()
    .unwrap();
    let watchdog = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(10));
        stop.store(true, Ordering::Relaxed);
    });
    let floor_times = floor.join().unwrap();
    drop(watchdog);
    let floor_ms = match (floor_times.first(), floor_times.iter().max()) {
        (Some(f), Some(l)) if floor_times.len() == n => (l - f) as f64 / 1e6,
        _ => f64::NAN,
    };
    let _ = std::fs::remove_dir_all(&dir);
    Some(Trial {
        takeover_ms: first.saturating_sub(killed) as f64 / 1e6,
        fanout_ms: (last - first) as f64 / 1e6,
        floor_ms,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

/// The shipping's own cost per acknowledged recorder, in this process: packing and
/// sealing on the actor's side, checking, reading and applying on the standby's.
fn shipping(n: usize) {
    use trapgate::engine::pair::{Kind, Opener, Packer, Sealer};
    use trapgate::engine::record::{Decided, Record};
    let key: Arc<[u8]> = Arc::from(&b"a pair key of the benchmark, 32b"[..]);
    let (me, peer): (SocketAddr, SocketAddr) = (
        "192.0.2.1:1620".parse().unwrap(),
        "192.0.2.2:1620".parse().unwrap(),
    );
    let records: Vec<Record> = (0..n)
        .map(|i| {
            Record::Decision(Decided::Acknowledged {
                recorder: format!("nvr-{i}").into(),
            })
        })
        .collect();
    let site_text = site(n, std::path::Path::new("/dev/null")).replace(
        &format!("\n[pair]\nself = \"192.0.2.1:1620\"\npeer = \"192.0.2.2:1620\"\naddress = \"{ADDRESS}\"\nkey_file = \"/dev/null\"\n"),
        "",
    );
    let site = trapgate::engine::config::Site::parse(&site_text).expect("the site");
    let relays = site
        .recorders
        .iter()
        .map(|r| (SocketAddr::new(r.address, r.port), [192, 0, 2, 100]))
        .collect();
    let t0 = trapgate::time::Timestamp(1_000_000_000_000);
    let mut station = trapgate::engine::station::Station::new(
        site,
        trapgate::engine::station::Options::default(),
        relays,
        Box::new(trapgate::engine::poller::Sequence(1)),
        t0,
    );
    station.demote(t0, "standby");
    // The actor's side.
    let started = Instant::now();
    let mut packer = Packer::default();
    for r in &records {
        packer.add(wall_ns(), r);
    }
    let mut sealer = Sealer::new(Arc::clone(&key), me, 7);
    let mut datagrams = Vec::new();
    for body in packer.take() {
        let mut out = Vec::new();
        sealer.seal(wall_ns() / 1_000_000, Kind::Records, &body, &mut out);
        datagrams.push(out);
    }
    let send = started.elapsed();
    // The standby's.
    let started = Instant::now();
    let mut opener = Opener::new(key, me);
    let mut applied = 0;
    for d in &datagrams {
        let o = opener.open(wall_ns() / 1_000_000, d).expect("believed");
        let (got, _) = trapgate::engine::pair::unpack(o.body);
        for (wall, r) in got {
            let made = trapgate::time::Timestamp(wall).utc().to_string();
            applied += station.handle_peer_record(t0, peer, o.seq, made, r) as usize;
        }
        while station.poll_record().is_some() {}
    }
    let receive = started.elapsed();
    let per = |d: Duration| d.as_secs_f64() * 1e9 / n as f64;
    println!(
        "shipping {n} acknowledgements: {} datagrams; actor: pack + seal {:.0} ns a recorder; standby: check + read + apply {:.0} ns a recorder ({applied} applied)",
        datagrams.len(),
        per(send),
        per(receive)
    );
}

fn main() {
    let mut args = Args::parse();
    if args.adverts.is_empty() {
        args.adverts = vec!["1".into()];
    }
    if let Err(why) = netns::possible("tkprobe") {
        eprintln!("takeover: network namespaces cannot be made here: {why}");
        std::process::exit(2);
    }
    println!(
        "{} recorders, {} trials per interval; times at the site's sink (kernel receive times)",
        args.recorders, args.trials
    );
    for advert in args.adverts.clone() {
        let mut all = Vec::new();
        for k in 0..args.trials {
            if let Some(t) = trial(&args, &advert, k) {
                println!(
                    "advert_int {advert} trial {k}: take-over {:.0} ms; new actor's fan-out {:.2} ms, floor {:.2} ms ({:.2}x)",
                    t.takeover_ms,
                    t.fanout_ms,
                    t.floor_ms,
                    t.fanout_ms / t.floor_ms
                );
                all.push(t);
            }
        }
        let ratio = median(all.iter().map(|t| t.fanout_ms / t.floor_ms).collect());
        println!(
            "advert_int {advert}: median of {}: take-over {:.0} ms (min {:.0}, max {:.0}); fan-out {:.2} ms, floor {:.2} ms, ratio {ratio:.2}x",
            all.len(),
            median(all.iter().map(|t| t.takeover_ms).collect()),
            all.iter()
                .map(|t| t.takeover_ms)
                .fold(f64::INFINITY, f64::min),
            all.iter().map(|t| t.takeover_ms).fold(0.0, f64::max),
            median(all.iter().map(|t| t.fanout_ms).collect()),
            median(all.iter().map(|t| t.floor_ms).collect()),
        );
    }
    shipping(args.recorders);
}
