//! fanout: how long a UPS's lowBattery trap takes to reach every recorder it shuts down.
//!
//! A site of one UPS with `--recorders` trap-relay recorders (127.14.x.y, one port),
//! confirming by poll off. A sink in a separate process (this binary, `--sink`) plays
//! every recorder at once: one socket on the recorders' port that only records the
//! kernel's receive time (SO_TIMESTAMPNS) of each order. Per trial, `trapgate run` is
//! started fresh, the trap leaves the UPS's address, and the time from its sending to
//! the kernel's receipt of the last order is measured: with the journal on (every
//! decision fsync'd before its orders leave) and off, beside the floor: a bare program
//! that fsyncs once and `sendmmsg`s the same number of datagrams of the same size to
//! the same sink, as the gateway sends them (`socket::Whole`: Don't Fragment and IP ID
//! 0, which spares the kernel a hashed ID per destination). The modes take turns, trial
//! by trial, so that a slow spell of this shared machine falls on all of them. Loopback
//! only; each trial is bounded in time. With the journal on, the sync the orders waited
//! for (the stop summary's) is set beside a bare append + `fdatasync` of as many bytes
//! after the same wait. Beside the
//! ratio of the medians it prints the paired one: the median of each trial's gateway
//! time over the floor of the same trial, which ran just before it.
//!
//! With `--against OTHER` (another trapgate binary, e.g. a build before a change), two
//! more modes: OTHER with the journal on and off, in the same turns, so that two builds
//! are compared in the same conditions (this machine's floor moves by half within an
//! hour).
//!
//! With `--outlets N` (e.g. 500), a fourth mode: the same site with every recorder on
//! one of N outlets of a switched PDU (shutdown time 0 s, so each outlet is cut as soon
//! as its recorders are ordered), the PDU's card played by this binary (`--card`):
//! it answers the read before write, the SET and the read-back, and records when the
//! last SET and the last read-back came. The orders must still leave first and reach
//! the last recorder as fast as without outlets; the SETs follow.
//!
//! The floor and the gateways run on the same pages: this binary starts again on huge
//! pages as `trapgate run` does (`trapgate::daemon::hugepages`), and what it starts
//! inherits the tunable. `GLIBC_TUNABLES=glibc.malloc.hugetlb=0 fanout …` runs all of
//! them on small pages.
//!
//! Run: `cargo build --release && cargo run --release -p trapgate-tools --bin fanout`
//! (`FANOUT_KEEP=1` keeps its directory: the site files and the last trial's journal).

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use trapgate::daemon::socket::{RecvBatch, SendBatch, Whole, bind_udp};
use trapgate::wire::encode;
use trapgate::wire::oid::oid;
use trapgate::wire::{Message, Value, VarBind};
use trapgate_tools::{spawn_listening, spawn_listening_said, stop, wall_ns};

#[derive(Parser)]
#[command(about = "Times a lowBattery trap's fan-out to every recorder, against the floor")]
struct Args {
    /// The trapgate binary.
    #[arg(long, default_value = "target/release/trapgate")]
    trapgate: PathBuf,
    /// Recorders on the UPS.
    #[arg(long, default_value_t = 5000)]
    recorders: usize,
    /// Trials of each mode.
    #[arg(long, default_value_t = 9)]
    trials: usize,
    /// Another trapgate binary (a build before a change) run trial by trial beside the
    /// first, journal on and off: the two compared in the same conditions.
    #[arg(long)]
    against: Option<PathBuf>,
    /// Outlets of a switched PDU the recorders are spread over (0: no outlets mode).
    #[arg(long, default_value_t = 0)]
    outlets: usize,
    /// (internal) Be the sink: PORT COUNT.
    #[arg(long, hide = true, num_args = 2, value_names = ["PORT", "COUNT"])]
    sink: Option<Vec<u64>>,
    /// (internal) Be the PDU's card: PORT OUTLETS.
    #[arg(long, hide = true, num_args = 2, value_names = ["PORT", "OUTLETS"])]
    card: Option<Vec<u64>>,
}

const PDU: Ipv4Addr = Ipv4Addr::new(127, 13, 0, 2);

/// The PDU's card: answers every get (an outlet on, then off once set) and set
/// (noError) with the request's id and community, until each of `outlets` has been set
/// and read back (15 s at most); prints the sets and read-backs seen and the kernel's
/// receive time of the last of each, ns since the epoch.
fn card(port: u16, outlets: u64) {
    use trapgate::wire::{Pdu, PduType};
    let socket = bind_udp(SocketAddr::from((PDU, port))).expect("the card's port");
    println!("ready");
    let _ = std::io::stdout().flush();
    let mut batch = RecvBatch::new();
    let mut answers = SendBatch::new();
    let mut off = std::collections::HashSet::new();
    let (mut sets, mut readbacks, mut last_set, mut last_readback) = (0u64, 0u64, 0u64, 0u64);
    let started = Instant::now();
    while readbacks < outlets && started.elapsed() < Duration::from_secs(15) {
        let n = match batch.recv(socket.as_raw_fd()) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_micros(50));
                continue;
            }
            Err(e) => panic!("card: {e}"),
        };
        for i in 0..n {
            let at = batch.arrival(i).unwrap_or_else(wall_ns);
            let Some((from, payload, _)) = batch.get(i) else {
                continue;
            };
            let arena = bumpalo::Bump::new();
            let Ok(m) = Message::parse(payload, &arena) else {
                continue;
            };
            let Pdu::Request(q) = m.pdu else { continue };
            let Some(vb) = q.varbinds.first() else {
                continue;
            };
            let value = match q.kind {
                PduType::SET_REQUEST => {
                    sets += 1;
                    last_set = last_set.max(at);
                    off.insert(vb.name.as_bytes().last().copied());
                    vb.value
                }
                _ if off.contains(&vb.name.as_bytes().last().copied()) => {
                    readbacks += 1;
                    last_readback = last_readback.max(at);
                    Value::Integer(1)
                }
                _ => Value::Integer(2),
            };
            let vbs = [VarBind {
                name: vb.name,
                value,
            }];
            let answer = encode::to_vec(&Message::pdu(
                m.version,
                m.community,
                PduType::RESPONSE,
                q.request_id,
                &vbs,
            ));
            answers.push(from, &answer);
        }
        answers.flush(socket.as_raw_fd());
    }
    println!("{sets} {last_set} {readbacks} {last_readback}");
}

const UPS: Ipv4Addr = Ipv4Addr::new(127, 13, 0, 1);

fn recorder(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 14, (i / 250) as u8, (i % 250) as u8 + 1)
}

/// The APC lowBattery v1 trap, as the UPS sends it and as trapgate relays it.
fn low_battery(agent: [u8; 4]) -> Vec<u8> {
    let enterprise = oid("1.3.6.1.4.1.318");
    let text = oid("1.3.6.1.4.1.318.2.3.3.0");
    let vb = [VarBind {
        name: text.as_oid(),
        value: Value::OctetString(b"UPS: Low battery. A shutdown is imminent."),
    }];
    encode::to_vec(&Message::trap_v1(
        b"public",
        enterprise.as_oid(),
        agent,
        7,
        100,
        &vb,
    ))
}

/// The sink: receives `count` datagrams on `port` (any 127.x address), then prints how
/// many came and the kernel's receive time of the last, ns since the epoch.
fn sink(port: u16, count: u64) {
    // Room for every order at once, whatever the default buffer.
    let socket = trapgate_tools::sink_socket(SocketAddr::from(([0, 0, 0, 0], port)));
    println!("ready");
    let _ = std::io::stdout().flush();
    let mut batch = RecvBatch::new();
    let (mut got, mut last) = (0u64, 0u64);
    let started = Instant::now();
    while got < count && started.elapsed() < Duration::from_secs(15) {
        match batch.recv(socket.as_raw_fd()) {
            Ok(0) => {}
            Ok(n) => {
                for i in 0..n {
                    got += 1;
                    last = last.max(batch.arrival(i).unwrap_or_else(wall_ns));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_micros(50))
            }
            Err(e) => panic!("sink: {e}"),
        }
    }
    println!("{got} {last}");
}

/// A helper of this binary in a process of its own (`--sink`: the recorders, `--card`:
/// the PDU's card): started, ready, and its one line of results read at the end.
struct Helper {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Helper {
    fn start(me: &Path, mode: &str, port: u16, count: usize) -> Helper {
        let mut child = Command::new(me)
            .args([mode, &port.to_string(), &count.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("the helper starts");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("the helper is ready");
        assert_eq!(line.trim(), "ready");
        Helper { child, out }
    }

    /// Its results: the sink's orders seen and the last one's receipt; the card's SETs
    /// seen, the last one's receipt, read-backs seen, the last one's receipt.
    fn result<const N: usize>(mut self) -> [u64; N] {
        let mut line = String::new();
        self.out.read_line(&mut line).expect("the helper's result");
        let _ = self.child.wait();
        let mut v = [0u64; N];
        for (slot, w) in v.iter_mut().zip(line.split_whitespace()) {
            *slot = w.parse().unwrap_or(0);
        }
        v
    }
}

/// `site`, with every recorder on one of `outlets` outlets of a PDU whose card listens
/// on `pdu_port`, and 0 s of shutdown time (each outlet is cut as soon as its recorders
/// are ordered).
fn site_with_outlets(
    listen: u16,
    card: u16,
    sink: u16,
    n: usize,
    pdu_port: u16,
    outlets: usize,
) -> String {
    let mut t = String::new();
    for (i, block) in site(listen, card, sink, n)
        .split("[[recorder]]\n")
        .enumerate()
    {
        if i == 0 {
            t.push_str(block);
            t.push_str(&format!(
                "[[pdu]]\nname = \"pdu-a\"\naddress = \"{PDU}\"\nport = {pdu_port}\nvendor = \"apc-rpdu2\"\nwrite_community = \"private\"\n\n"
            ));
            continue;
        }
        t.push_str("[[recorder]]\n");
        t.push_str(&block.replace(
            "shutdown_time = \"90s\"\n",
            &format!(
                "shutdown_time = \"0s\"\noutlet = {{ pdu = \"pdu-a\", outlet = {} }}\n",
                (i - 1) % outlets + 1
            ),
        ));
    }
    t
}

fn site(listen: u16, card: u16, sink: u16, n: usize) -> String {
    let mut t = format!(
        "[gateway]\nlisten = [\"127.0.0.1:{listen}\"]\nagent = \"127.0.0.1:0\"\ncommunity = \"public\"\n\n\
         [policy]\ngrace = {{ 1 = \"10m\" }}\nshutdown_below_charge = 30\nshutdown_below_runtime = \"5m\"\n\
         confirm_by_poll = false\n\n\
         [[ups]]\nname = \"ups-main\"\naddress = \"{UPS}\"\nport = {card}\nvendor = \"apc\"\npoll_interval = \"60s\"\noutlet_off_delay = \"5m\"\n\n"
    );
    for i in 0..n {
        t.push_str(&format!(
            "[[recorder]]\nname = \"nvr-{i}\"\naddress = \"{}\"\nport = {sink}\nups = \"ups-main\"\ntier = 1\nshutdown_time = \"90s\"\n\n",
            recorder(i)
        ));
    }
    t
}

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port()
}

/// One trial of trapgate: from the trap's sending to the last order's receipt, ns; and
/// with a journal, the largest sync its orders waited for (bytes, ns: the fan-out's decisions), as its stop
/// summary says.
fn gateway_trial(
    args: &Args,
    binary: &Path,
    me: &Path,
    site: &Path,
    journal: Option<&Path>,
    listen: u16,
    sink_port: u16,
) -> Option<(u64, Option<(u64, u64)>)> {
    let mut cmd = Command::new(binary);
    cmd.args(["run", "--config"]).arg(site);
    if let Some(j) = journal {
        let _ = std::fs::remove_file(j);
        cmd.arg("--journal").arg(j);
    }
    let (mut child, said) = spawn_listening_said(&mut cmd);
    // Let it settle (its first poll, the journal's first records).
    std::thread::sleep(SETTLE);
    let sink = Helper::start(me, "--sink", sink_port, args.recorders);
    let ups = UdpSocket::bind((UPS, 0)).expect("the UPS's socket");
    let trap = low_battery(UPS.octets());
    let sent = wall_ns();
    ups.send_to(&trap, ("127.0.0.1", listen))
        .expect("send the trap");
    let [got, last] = sink.result();
    stop(&mut child);
    let said: Vec<String> = said.try_iter().collect();
    // Its own account of the trial: arrival → decided, arrival → the orders sent.
    for l in said
        .iter()
        .filter(|l| l.contains("latency LowBattery") || l.contains("latency shutdown orders sent"))
    {
        println!("  {}", l.trim());
    }
    // "journal syncs n=… before orders left, the largest BYTES bytes in MS ms": the
    // fan-out's decisions (the largest of all is the start's record, the site's text).
    let largest = said.iter().find_map(|l| {
        let rest = l.split("before orders left, the largest ").nth(1)?;
        let mut words = rest.split_whitespace();
        let bytes = words.next()?.parse().ok()?;
        let ms: f64 = words.nth(2)?.parse().ok()?;
        Some((bytes, (ms * 1e6) as u64))
    });
    (got == args.recorders as u64).then(|| (last.saturating_sub(sent), largest))
}

/// How long a gateway waits for its trap after it started: its journal's last sync (the
/// start's record) is as long before the fan-out's.
const SETTLE: Duration = Duration::from_millis(300);

/// The fsync's floor: `bytes` appended to a fresh file beside the journal in one
/// `write`, then one `fdatasync`, both timed (ns), as the journal's sync times the
/// write of what it buffered and its `fdatasync`; after as long a wait with the disk
/// idle as the gateway's sync had (`SETTLE`): on this machine a sync after 300 ms of
/// quiet takes about twice one right after another.
fn sync_floor(file: &Path, bytes: u64) -> u64 {
    let _ = std::fs::remove_file(file);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .expect("the sync floor's file");
    let data = vec![b'x'; bytes as usize];
    std::thread::sleep(SETTLE);
    let started = Instant::now();
    f.write_all(&data).expect("write");
    f.sync_data().expect("fdatasync");
    started.elapsed().as_nanos() as u64
}

/// One trial of trapgate with the recorders on the PDU's outlets (journal on): the
/// last order's receipt after the trap, and the last read-back's receipt after the
/// last order, ns; None if an order, a SET or a read-back is missing.
fn outlets_trial(
    args: &Args,
    me: &Path,
    site: &Path,
    journal: &Path,
    listen: u16,
    sink_port: u16,
    pdu_port: u16,
) -> Option<(u64, u64)> {
    let mut cmd = Command::new(&args.trapgate);
    cmd.args(["run", "--config"]).arg(site);
    let _ = std::fs::remove_file(journal);
    cmd.arg("--journal").arg(journal);
    let card = Helper::start(me, "--card", pdu_port, args.outlets);
    let mut child = spawn_listening(&mut cmd);
    std::thread::sleep(SETTLE);
    let sink = Helper::start(me, "--sink", sink_port, args.recorders);
    let ups = UdpSocket::bind((UPS, 0)).expect("the UPS's socket");
    let trap = low_battery(UPS.octets());
    let sent = wall_ns();
    ups.send_to(&trap, ("127.0.0.1", listen))
        .expect("send the trap");
    let [got, last] = sink.result();
    let [sets, _, readbacks, last_readback] = card.result();
    stop(&mut child);
    let all = got == args.recorders as u64
        && sets >= args.outlets as u64
        && readbacks >= args.outlets as u64;
    all.then(|| {
        (
            last.saturating_sub(sent),
            last_readback.saturating_sub(last),
        )
    })
}

/// One trial of the floor: fsync once, then every order in `sendmmsg` batches.
fn floor_trial(args: &Args, me: &Path, file: &Path, sink_port: u16) -> Option<u64> {
    let sink = Helper::start(me, "--sink", sink_port, args.recorders);
    let socket = UdpSocket::bind("127.0.0.1:0").expect("a socket");
    let order = low_battery([127, 0, 0, 1]);
    let mut batch = SendBatch::new();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .expect("the floor's file");
    let started = wall_ns();
    f.write_all(&[b'x'; 300]).expect("write");
    f.sync_data().expect("fsync");
    for i in 0..args.recorders {
        batch.push(SocketAddr::from((recorder(i), sink_port)), &order);
    }
    // Sent as the gateway sends its orders (`Whole`: Don't Fragment, IP ID 0), so that
    // the floor is what this machine costs at best, not a cost the gateway avoids.
    Whole::default().flush(&mut batch, socket.as_raw_fd());
    let [got, last] = sink.result();
    (got == args.recorders as u64).then(|| last.saturating_sub(started))
}

/// The median of the ratios of pairs (a measure, its floor's in the same turn).
fn paired_median(pairs: impl Iterator<Item = (u64, u64)>) -> f64 {
    let mut ratios: Vec<f64> = pairs
        .map(|(x, floor)| x as f64 / floor.max(1) as f64)
        .collect();
    ratios.sort_by(|a, b| a.total_cmp(b));
    ratios.get(ratios.len() / 2).copied().unwrap_or(f64::NAN)
}

fn median(v: &mut [u64]) -> f64 {
    v.sort_unstable();
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2] as f64 / 1e6
}

fn main() {
    let args = Args::parse();
    // The floor runs in this process: on huge pages when the gateways are (they start
    // again on them, `trapgate::daemon::hugepages`), so the two are compared alike.
    // The sink, the card and the gateways inherit the tunable.
    if let Some(e) = trapgate::daemon::hugepages::start_again_on_huge_pages() {
        eprintln!("fanout: could not start again on huge pages ({e})");
    }
    if let Some(s) = &args.sink {
        sink(s[0] as u16, s[1]);
        return;
    }
    if let Some(c) = &args.card {
        card(c[0] as u16, c[1]);
        return;
    }
    assert!(
        args.trapgate.exists(),
        "{} is missing: cargo build --release first",
        args.trapgate.display()
    );
    let me = std::env::current_exe().expect("this binary");
    let dir = std::env::temp_dir().join(format!("trapgate-fanout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let card = UdpSocket::bind((UPS, 0)).expect("the UPS card's socket (never answers)");
    let (listen, sink_port) = (free_port(), free_port());
    let site_path = dir.join("site.toml");
    let text = site(
        listen,
        card.local_addr().expect("addr").port(),
        sink_port,
        args.recorders,
    );
    std::fs::write(&site_path, text).expect("site");
    let pdu_port = free_port();
    let outlets_path = dir.join("site-outlets.toml");
    if args.outlets > 0 {
        let text = site_with_outlets(
            listen,
            card.local_addr().expect("addr").port(),
            sink_port,
            args.recorders,
            pdu_port,
            args.outlets,
        );
        std::fs::write(&outlets_path, text).expect("site");
    }
    let journal = dir.join("journal");
    let (mut floor, mut on, mut off) = (Vec::new(), Vec::new(), Vec::new());
    let (mut other_on, mut other_off) = (Vec::new(), Vec::new());
    if let Some(b) = &args.against {
        assert!(b.exists(), "{} is missing", b.display());
    }
    let (mut syncs, mut sync_floors) = (Vec::new(), Vec::new());
    let (mut with_outlets, mut sets_after) = (Vec::new(), Vec::new());
    let mut lost = 0;
    let mut trials: Vec<[Option<u64>; 5]> = Vec::with_capacity(args.trials);
    for trial in 0..args.trials {
        if args.outlets > 0 {
            match outlets_trial(
                &args,
                &me,
                &outlets_path,
                &journal,
                listen,
                sink_port,
                pdu_port,
            ) {
                Some((fan, after)) => {
                    println!(
                        "trial {trial} journal on, {} outlets: last of {} orders received after {:.2} ms, last read-back {:.2} ms after it",
                        args.outlets,
                        args.recorders,
                        fan as f64 / 1e6,
                        after as f64 / 1e6
                    );
                    with_outlets.push(fan);
                    sets_after.push(after);
                }
                None => {
                    println!("trial {trial} outlets: an order, a SET or a read-back missing");
                    lost += 1;
                }
            }
        }
        let mut modes = vec![
            ("floor", &mut floor),
            ("journal on", &mut on),
            ("journal off", &mut off),
        ];
        if args.against.is_some() {
            modes.push(("against, journal on", &mut other_on));
            modes.push(("against, journal off", &mut other_off));
        }
        // This trial's times by mode (floor, on, off, against on, against off), for the
        // paired ratios.
        let mut this = [None; 5];
        for (k, (mode, out)) in modes.into_iter().enumerate() {
            let other = args.against.as_deref().unwrap_or(&args.trapgate);
            let r = match mode {
                "floor" => floor_trial(&args, &me, &dir.join("floor"), sink_port),
                "against, journal on" => gateway_trial(
                    &args,
                    other,
                    &me,
                    &site_path,
                    Some(&journal),
                    listen,
                    sink_port,
                )
                .map(|(fan, _)| fan),
                "against, journal off" => {
                    gateway_trial(&args, other, &me, &site_path, None, listen, sink_port)
                        .map(|(fan, _)| fan)
                }
                "journal on" => {
                    let r = gateway_trial(
                        &args,
                        &args.trapgate,
                        &me,
                        &site_path,
                        Some(&journal),
                        listen,
                        sink_port,
                    );
                    if let Some((_, Some((bytes, ns)))) = r {
                        let bare = sync_floor(&dir.join("sync-floor"), bytes);
                        println!(
                            "trial {trial} journal on: the sync its orders waited for, {bytes} bytes, in {:.3} ms; the bare append + fdatasync of as many {:.3} ms",
                            ns as f64 / 1e6,
                            bare as f64 / 1e6
                        );
                        syncs.push(ns);
                        sync_floors.push(bare);
                    }
                    r.map(|(fan, _)| fan)
                }
                _ => gateway_trial(
                    &args,
                    &args.trapgate,
                    &me,
                    &site_path,
                    None,
                    listen,
                    sink_port,
                )
                .map(|(fan, _)| fan),
            };
            match r {
                Some(ns) => {
                    println!(
                        "trial {trial} {mode}: last of {} orders received after {:.2} ms",
                        args.recorders,
                        ns as f64 / 1e6
                    );
                    out.push(ns);
                    this[k] = Some(ns);
                }
                None => {
                    println!("trial {trial} {mode}: not every order arrived (the sink's buffer?)");
                    lost += 1;
                }
            }
        }
        trials.push(this);
    }
    // Each trial's gateway over the floor of the same trial (they ran one after the
    // other): a slow spell of this shared machine falls on both sides of each ratio.
    let paired = |k: usize| paired_median(trials.iter().filter_map(|t| Some((t[k]?, t[0]?))));
    let (f, n, o) = (median(&mut floor), median(&mut on), median(&mut off));
    let range = |v: &[u64]| {
        format!(
            "{:.2}–{:.2}",
            *v.first().unwrap_or(&0) as f64 / 1e6,
            *v.last().unwrap_or(&0) as f64 / 1e6
        )
    };
    println!(
        "{} recorders, {} trials each (medians, ms; range): floor {f:.2} ({}); trapgate, journal on {n:.2} ({}), {:.2}× the floor; journal off {o:.2} ({}), {:.2}× the floor{}",
        args.recorders,
        args.trials,
        range(&floor),
        range(&on),
        n / f,
        range(&off),
        o / f,
        if lost > 0 {
            format!("; {lost} trials lost orders")
        } else {
            String::new()
        }
    );
    println!(
        "paired (the median of each trial's ratio to its own floor): journal on {:.2}×, journal off {:.2}×",
        paired(1),
        paired(2)
    );
    println!(
        "memory: {}",
        match std::env::var(trapgate::daemon::hugepages::TUNABLES) {
            Ok(t) => format!("GLIBC_TUNABLES={t}, the floor's and the gateways' alike"),
            Err(_) => "glibc's defaults, the floor's and the gateways' alike".into(),
        }
    );
    if let Some(b) = &args.against {
        let (ao, af) = (median(&mut other_on), median(&mut other_off));
        println!(
            "against {}: journal on {ao:.2} ({}), {:.2}× the floor, {:.2}× this binary's; journal off {af:.2} ({}), {:.2}× the floor, {:.2}× this binary's",
            b.display(),
            range(&other_on),
            ao / f,
            ao / n,
            range(&other_off),
            af / f,
            af / o
        );
        println!(
            "against {}, paired: journal on {:.2}×, journal off {:.2}× the floor",
            b.display(),
            paired(3),
            paired(4)
        );
    }
    if !syncs.is_empty() {
        // Each trial's sync over the floor's timed right after it: this disk's latency
        // moves between two levels (about 0.4 and 1.3 ms here) from one minute to the
        // next, which a ratio of two medians takes as a difference.
        let p = paired_median(syncs.iter().copied().zip(sync_floors.iter().copied()));
        let (j, b) = (median(&mut syncs), median(&mut sync_floors));
        println!(
            "the journal's sync of the fan-out's decisions {j:.3} ms ({}); a bare append + fdatasync of the same bytes {b:.3} ms ({}): {:.2}× the floor; paired (the median of each trial's ratio) {p:.2}×",
            range(&syncs),
            range(&sync_floors),
            j / b
        );
    }
    if args.outlets > 0 {
        let (w, a) = (median(&mut with_outlets), median(&mut sets_after));
        println!(
            "with {} outlets (journal on): the last order after {w:.2} ms ({}), {:.3}× without outlets; every SET and read-back done {a:.2} ms after the last order ({}), {:.2}× the orders' own fan-out",
            args.outlets,
            range(&with_outlets),
            w / n,
            range(&sets_after),
            a / n
        );
    }
    if std::env::var_os("FANOUT_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
