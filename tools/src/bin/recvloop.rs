//! recvloop: the floor for the receive-path benchmark. The same sockets and the same
//! mio + `recvmmsg` loop as `trapgate run`, doing nothing with the datagrams but count
//! them. Stops on SIGINT/SIGTERM and prints the count.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use signal_hook_mio::v1_0::Signals;
use trapgate::daemon::socket::{RecvBatch, bind_udp};

fn main() -> std::process::ExitCode {
    let Some(listen) = std::env::args()
        .nth(1)
        .and_then(|a| a.parse::<SocketAddr>().ok())
    else {
        eprintln!("usage: recvloop ADDR:PORT");
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
    loop {
        if poll.poll(&mut events, None).is_err() {
            continue;
        }
        for event in events.iter() {
            if event.token() == Token(1) {
                println!("received {count}");
                return std::process::ExitCode::SUCCESS;
            }
            loop {
                match batch.recv(socket.as_raw_fd()) {
                    Ok(0) => break,
                    Ok(n) => count += n as u64,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
        }
    }
}
