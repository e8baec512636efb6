//! What the load tools share: the trap they all send as noise, and `trapgate run` started
//! and stopped as a benchmark needs it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use trapgate::wire::encode;
use trapgate::wire::oid::oid;
use trapgate::wire::{Message, PduType, Value, VarBind, Version};

/// A v2c coldStart trap (community `public`): decodes and classifies as Informational,
/// decided, changes nothing.
pub fn cold_start() -> Vec<u8> {
    let uptime = oid("1.3.6.1.2.1.1.3.0");
    let trap_oid = oid("1.3.6.1.6.3.1.1.4.1.0");
    let cold = oid("1.3.6.1.6.3.1.1.5.1");
    let vbs = [
        VarBind {
            name: uptime.as_oid(),
            value: Value::TimeTicks(12345),
        },
        VarBind {
            name: trap_oid.as_oid(),
            value: Value::ObjectId(cold.as_oid()),
        },
    ];
    encode::to_vec(&Message::pdu(
        Version::V2c,
        b"public",
        PduType::SNMPV2_TRAP,
        1,
        &vbs,
    ))
}

/// Spawns `cmd` (a `trapgate run`), its stdout discarded, and returns once its first
/// stderr line says it listens; the rest of its stderr is read and dropped.
pub fn spawn_listening(cmd: &mut Command) -> Child {
    spawn_listening_said(cmd).0
}

/// `spawn_listening`, with the rest of what it says on stderr (its stop summary among
/// it) as lines.
pub fn spawn_listening_said(cmd: &mut Command) -> (Child, std::sync::mpsc::Receiver<String>) {
    let (child, _, rest) = spawn_listening_at(cmd);
    (child, rest)
}

/// `spawn_listening_said`, with the first address it says it listens on (its trap port).
pub fn spawn_listening_at(
    cmd: &mut Command,
) -> (
    Child,
    std::net::SocketAddr,
    std::sync::mpsc::Receiver<String>,
) {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("trapgate starts");
    let mut err = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    let _ = err.read_line(&mut line);
    assert!(line.contains("listening on"), "trapgate: {line}");
    let at = line
        .split("listening on ")
        .nth(1)
        .and_then(|r| r.split([' ', ',']).next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in: {line}"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in err.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, at, rx)
}

/// Stops `child` with SIGTERM, as a service manager would, and waits for it.
pub fn stop(child: &mut Child) {
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let _ = child.wait();
}

/// The wall clock, in ns since 1970 (the clock the kernel's receive times are on).
pub fn wall_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A sink's socket on `addr` (non-blocking, the kernel's receive time with each
/// datagram), with room for a fan-out's every datagram at once whatever the default
/// buffer (root may force it: 64 MiB).
pub fn sink_socket(addr: std::net::SocketAddr) -> std::net::UdpSocket {
    use std::os::fd::AsRawFd;
    let socket = trapgate::daemon::socket::bind_udp(addr).expect("the sink's port");
    // Refused without CAP_NET_ADMIN: the default buffer then, which the kernel caps.
    let _ = trapgate::daemon::socket::set_int_option(
        socket.as_raw_fd(),
        libc::SOL_SOCKET,
        libc::SO_RCVBUFFORCE,
        64 * 1024 * 1024,
    );
    socket
}
