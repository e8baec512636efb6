//! trapblast: a bounded UDP trap storm for load tests on loopback (or inside a network
//! namespace the test created). Sends pre-encoded SNMP traps with `sendmmsg(2)` in
//! batches, flat out or at a fixed rate, for a fixed count and never longer than a time
//! limit, then prints how many it sent.
//!
//! `--from ADDR --addresses N` sends from N consecutive source addresses (the 127/8
//! loopback block holds 16 million of them on Linux, or a test namespace's own), each
//! with `--sources` ports: a site of many UPSes.
//!
//! `--every N --event HEX` puts a real UPS trap (its payload in hex) after every N noise
//! traps, so a storm carries the events the gateway must still decide.
//!
//! `--v3` sends the noise as SNMPv3 authPriv traps (user `upsv3user`, SHA `authpass123`,
//! AES-128 `privpass123`, from engine `V3_ENGINE`), as a card with a v3 receiver would.
#![allow(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use clap::Parser;
use trapgate::wire::Message;
use trapgate_tools::cold_start;

#[derive(Parser)]
#[command(about = "A bounded SNMP trap storm, for loopback load tests")]
struct Args {
    /// Where to send (127.0.0.1:PORT or [::1]:PORT, or an address inside a test namespace).
    #[arg(long)]
    to: SocketAddr,
    /// How many traps to send in all.
    #[arg(long, default_value_t = 100_000)]
    count: u64,
    /// Traps per second (0: as fast as possible).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Stop after this many seconds even if `count` is not reached.
    #[arg(long, default_value_t = 60)]
    max_seconds: u64,
    /// Send from this many sockets (source ports) per source address, in turn.
    #[arg(long, default_value_t = 4)]
    sources: usize,
    /// The first source address (default: 127.0.0.1, or ::1 toward IPv6).
    #[arg(long)]
    from: Option<IpAddr>,
    /// Send from this many consecutive IPv4 source addresses, starting at `--from`.
    #[arg(long, default_value_t = 1)]
    addresses: u32,
    /// After every N noise traps, send the `--event` trap.
    #[arg(long, default_value_t = 0)]
    every: u64,
    /// A real trap's UDP payload, in hex.
    #[arg(long)]
    event: Option<String>,
    /// Send the noise as SNMPv3 authPriv traps (SHA, AES-128).
    #[arg(long)]
    v3: bool,
}

/// The engine the `--v3` traps come from: 0x80001370 05 "blast-01".
pub const V3_ENGINE: &[u8] = b"\x80\x00\x13\x70\x05blast-01";

/// The noise as a v3 authPriv trap of `upsv3user` (SHA, AES-128).
fn noise_v3(v2c: &[u8]) -> Vec<u8> {
    use trapgate::wire::usm::{AuthProtocol, Keys, PrivProtocol, password_to_key};
    use trapgate::wire::v3::{Level, Seal, seal};
    let arena = bumpalo::Bump::new();
    let m = Message::parse(v2c, &arena).expect("the noise decodes");
    let auth = AuthProtocol::Sha1;
    let keys = Keys::localized(
        auth,
        &password_to_key(auth, b"authpass123"),
        Some((PrivProtocol::Aes128, &password_to_key(auth, b"privpass123"))),
        V3_ENGINE,
    );
    let s = Seal {
        msg_id: 1,
        max_size: 1472,
        reportable: false,
        engine_id: V3_ENGINE,
        boots: 1,
        time: 100,
        user: b"upsv3user",
        level: Level::AuthPriv,
        context_engine_id: V3_ENGINE,
        context_name: b"",
        salt: [0, 0, 0, 1, 0, 0, 0, 1],
    };
    let (mut scratch, mut out) = (Vec::new(), Vec::new());
    seal(&m.pdu, &s, Some(&keys), &mut scratch, &mut out);
    out
}

fn hex(s: &str) -> Result<Vec<u8>, String> {
    trapgate::wire::hex::decode(s.trim())
        .ok_or_else(|| format!("--event: {s:?} is not hex (two digits a byte)"))
}

/// Sends `payloads` to `to` in one `sendmmsg` call; returns how many went.
fn send_batch(
    socket: &UdpSocket,
    to: &socket2::SockAddr,
    payloads: &[&[u8]],
) -> std::io::Result<usize> {
    let mut iovecs: Vec<libc::iovec> = payloads
        .iter()
        .map(|p| libc::iovec {
            iov_base: p.as_ptr() as *mut libc::c_void,
            iov_len: p.len(),
        })
        .collect();
    let mut headers: Vec<libc::mmsghdr> = iovecs
        .iter_mut()
        .map(|iov| {
            // SAFETY: mmsghdr is a plain C struct; all-zero is valid, fields set below.
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_name = to.as_ptr() as *mut libc::c_void;
            h.msg_hdr.msg_namelen = to.len();
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
            h
        })
        .collect();
    // SAFETY: every header names one iovec over a live payload slice and the live
    // destination address; both outlive the call.
    let n = unsafe {
        libc::sendmmsg(
            socket.as_raw_fd(),
            headers.as_mut_ptr(),
            headers.len() as u32,
            0,
        )
    };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let event = match args.event.as_deref().map(hex).transpose() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("trapblast: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let noise = if args.v3 {
        noise_v3(&cold_start())
    } else {
        cold_start()
    };
    let first = args.from.unwrap_or(if args.to.is_ipv6() {
        "::1".parse().expect("addr")
    } else {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    });
    let addresses: Vec<IpAddr> = match (first, args.addresses.max(1)) {
        (a, 1) => vec![a],
        (IpAddr::V4(a), n) => (0..n)
            .map(|i| IpAddr::V4(Ipv4Addr::from(u32::from(a).wrapping_add(i))))
            .collect(),
        (IpAddr::V6(_), _) => {
            eprintln!("trapblast: --addresses counts IPv4 addresses only");
            return std::process::ExitCode::from(2);
        }
    };
    let mut sockets = Vec::with_capacity(addresses.len() * args.sources.max(1));
    for _ in 0..args.sources.max(1) {
        for a in &addresses {
            match UdpSocket::bind((*a, 0)) {
                Ok(s) => sockets.push(s),
                Err(e) => {
                    eprintln!("trapblast: cannot send from {a}: {e}");
                    return std::process::ExitCode::from(2);
                }
            }
        }
    }
    let to = socket2::SockAddr::from(args.to);
    let start = Instant::now();
    let limit = Duration::from_secs(args.max_seconds);
    let (mut sent, mut events, mut errors) = (0u64, 0u64, 0u64);
    let mut turn = 0;
    while sent < args.count && start.elapsed() < limit {
        let n = (args.count - sent).min(64) as usize;
        let batch: Vec<&[u8]> = (0..n as u64)
            .map(|i| match (&event, args.every) {
                (Some(e), every) if every > 0 && (sent + i) % (every + 1) == every => e.as_slice(),
                _ => noise.as_slice(),
            })
            .collect();
        match send_batch(&sockets[turn % sockets.len()], &to, &batch) {
            Ok(k) => {
                events += batch[..k]
                    .iter()
                    .filter(|p| p.as_ptr() != noise.as_ptr())
                    .count() as u64;
                sent += k as u64;
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.raw_os_error() == Some(libc::ENOBUFS) =>
            {
                errors += 1;
                std::thread::yield_now();
            }
            Err(e) => {
                eprintln!("trapblast: send to {}: {e}", args.to);
                return std::process::ExitCode::from(1);
            }
        }
        turn += 1;
        if args.rate > 0 {
            let due = Duration::from_secs_f64(sent as f64 / args.rate as f64);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "sent {sent} traps ({events} events) to {} in {secs:.3} s: {:.0}/s; {errors} retries",
        args.to,
        sent as f64 / secs.max(1e-9)
    );
    std::process::ExitCode::SUCCESS
}
