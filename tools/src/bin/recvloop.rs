//! recvloop: the floor for the receive-path benchmark. The same sockets and the same
//! mio + `recvmmsg` loop as `trapgate run`, doing nothing with the datagrams but count
//! them and time them: the kernel's receive time (SO_TIMESTAMPNS, as trapgate's) to the
//! batch read, in the same histogram as trapgate's latencies. Stops on SIGINT/SIGTERM
//! and prints the count, then the latency's p50, p99 and p99.9 in microseconds
//! (`latency p50 … p99 … p99.9 …`).
//!
//! `recvloop --discard ADDR:PORT`: a sink that costs its machine nothing, standing in
//! for a host of its own (the forwarding benchmark's NMS): its socket's buffer is the
//! smallest the kernel allows and it reads nothing until it stops; then it counts what
//! arrived, the datagrams the kernel dropped for the full buffer (SK_MEMINFO_DROPS) and
//! those still in it.
//!
//! It runs on the pages `trapgate run` runs on: it starts again on huge pages as the
//! gateway does (`trapgate::daemon::hugepages`).

use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use signal_hook_mio::v1_0::Signals;
use trapgate::daemon::socket::{RecvBatch, bind_udp};

fn main() -> std::process::ExitCode {
    // On the same pages as the gateway it is the floor of (`trapgate run` starts again
    // on huge pages: `trapgate::daemon::hugepages`).
    if let Some(e) = trapgate::daemon::hugepages::start_again_on_huge_pages() {
        eprintln!("recvloop: could not start again on huge pages ({e})");
    }
    let discard = std::env::args().nth(1).as_deref() == Some("--discard");
    let Some(listen) = std::env::args()
        .nth(1 + discard as usize)
        .and_then(|a| a.parse::<SocketAddr>().ok())
    else {
        eprintln!("usage: recvloop [--discard] ADDR:PORT");
        return std::process::ExitCode::from(2);
    };
    let mut socket = match bind_udp(listen) {
        Ok(s) => UdpSocket::from_std(s),
        Err(e) => {
            eprintln!("recvloop: cannot listen on {listen}: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let mut poll = Poll::new().expect("epoll");
    poll.registry()
        .register(&mut socket, Token(0), Interest::READABLE)
        .expect("register");
    let mut signals = Signals::new([libc::SIGINT, libc::SIGTERM]).expect("signals");
    poll.registry()
        .register(&mut signals, Token(1), Interest::READABLE)
        .expect("register");
    eprintln!(
        "recvloop: listening on {}",
        socket.local_addr().expect("addr")
    );
    let mut events = Events::with_capacity(8);
    let mut batch = RecvBatch::new();
    let mut count = 0u64;
    let mut latency =
        hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("bounds");
    if discard {
        let _ = socket2::SockRef::from(&socket).set_recv_buffer_size(0);
        poll.registry().deregister(&mut socket).expect("deregister");
        loop {
            if poll.poll(&mut events, None).is_ok() && events.iter().any(|e| e.token() == Token(1))
            {
                let mut kept = 0u64;
                while let Ok(n) = batch.recv(socket.as_raw_fd()) {
                    if n == 0 {
                        break;
                    }
                    kept += n as u64;
                }
                let dropped =
                    trapgate::daemon::socket::socket_drops(socket.as_raw_fd()).unwrap_or(0);
                println!("received {}", dropped + kept);
                return std::process::ExitCode::SUCCESS;
            }
        }
    }
    loop {
        if poll.poll(&mut events, None).is_err() {
            continue;
        }
        for event in events.iter() {
            if event.token() == Token(1) {
                println!("received {count}");
                let us = |q: f64| latency.value_at_quantile(q) as f64 / 1e3;
                println!(
                    "latency p50 {:.1} p99 {:.1} p99.9 {:.1} us (n={})",
                    us(0.5),
                    us(0.99),
                    us(0.999),
                    latency.len()
                );
                return std::process::ExitCode::SUCCESS;
            }
            loop {
                match batch.recv(socket.as_raw_fd()) {
                    Ok(0) => break,
                    Ok(n) => {
                        count += n as u64;
                        // Read: the batch's time, once, as trapgate's workers take it.
                        let read = trapgate::daemon::clock::now().0;
                        for k in 0..n {
                            if let Some(kernel) = batch.arrival(k) {
                                latency.saturating_record(read.saturating_sub(kernel).max(1));
                            }
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
        }
    }
}
