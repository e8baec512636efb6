//! The platform details of the live gateway, in one place: UDP sockets opened with
//! socket2 (SO_REUSEPORT for the trap port's group only, a large SO_RCVBUF, v6-only for
//! IPv6) and SO_TIMESTAMPNS (the kernel's receive time of each datagram), batch receive
//! and send with Linux `recvmmsg(2)` / `sendmmsg(2)`, and the kill of a command's whole
//! process group.
//!
//! This is the module with `unsafe` (elsewhere only `daemon::clock::coarse_monotonic`,
//! and helpers of tests): the `recvmmsg`, `sendmmsg`,
//! `setsockopt` and `kill` calls, the control-message walk for the kernel's receive
//! timestamps, and the `sockaddr` conversions, each with its reason beside it.
#![allow(unsafe_code)]

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};

use socket2::{Domain, Protocol, Socket, Type};

/// Datagrams received per `recvmmsg` call.
pub const BATCH: usize = 64;
/// The largest datagram kept whole; longer ones are counted as truncated.
pub const MAX_DATAGRAM: usize = 16 * 1024;
/// The receive buffer asked of the kernel (it may grant less: net.core.rmem_max).
pub const RCVBUF: usize = 8 * 1024 * 1024;

/// Opens a non-blocking UDP socket on `addr` that no other socket can share: the
/// virtual UPS's and the poller's. Without SO_REUSEADDR and SO_REUSEPORT, a later process
/// (of any user) that binds the same address and port is refused, so it cannot take a
/// share of the recorders' polls or of the UPSes' answers.
pub fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    open_udp(addr, false, false)
}

/// Opens a non-blocking UDP socket on `addr`, which need not be this host's yet
/// (`IP_FREEBIND`): a pair's address, which keepalived brings to the actor. Until it
/// comes, nothing arrives there and nothing can leave from it.
pub fn bind_udp_free(addr: SocketAddr) -> io::Result<UdpSocket> {
    open_udp(addr, false, true)
}

/// Opens a non-blocking UDP socket on `addr` in a SO_REUSEPORT group (the trap port's
/// workers), ready for a trap storm.
fn bind_shared(addr: SocketAddr) -> io::Result<UdpSocket> {
    open_udp(addr, true, false)
}

fn open_udp(addr: SocketAddr, shared: bool, free: bool) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if free {
        set_freebind(&socket, addr)?;
    }
    if shared {
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // A smaller buffer than asked is not an error: the kernel caps it.
    let _ = socket.set_recv_buffer_size(RCVBUF);
    socket.bind(&addr.into())?;
    socket.set_nonblocking(true)?;
    // The kernel's receive time of each datagram comes with it (SCM_TIMESTAMPNS).
    set_int_option(
        socket.as_raw_fd(),
        libc::SOL_SOCKET,
        libc::SO_TIMESTAMPNS,
        1,
    )?;
    Ok(socket.into())
}

/// Sets the int socket option `name` of `level` on `fd` to `value` (those socket2 does
/// not name: SO_TIMESTAMPNS, SO_RCVBUFFORCE, SO_NO_CHECK).
pub fn set_int_option(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: a pointer to an int that outlives the call, and its size; the kernel
    // checks the descriptor and the option.
    let set = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if set != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reads the int socket option `name` of `level` on `fd`.
pub fn int_option(fd: RawFd, level: libc::c_int, name: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: a pointer to an int and its size, both valid for the call; the kernel
    // writes at most `len` bytes and checks the descriptor and the option.
    let got = unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if got != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(value)
}

/// Waits up to `timeout` for room to send on `fd` (a non-blocking socket whose send
/// buffer is full); whether there is.
pub fn wait_writable(fd: std::os::fd::RawFd, timeout: std::time::Duration) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one pollfd, valid for the call.
    let n = unsafe { libc::poll(&mut p, 1, timeout.as_millis().min(i32::MAX as u128) as i32) };
    n == 1 && p.revents & libc::POLLOUT != 0
}

/// Lets `socket` bind `addr` before the host has it (`IP_FREEBIND`).
pub fn set_freebind(socket: &Socket, addr: SocketAddr) -> io::Result<()> {
    if addr.is_ipv4() {
        socket.set_freebind_v4(true)
    } else {
        socket.set_freebind_v6(true)
    }
}

/// `SO_ATTACH_REUSEPORT_CBPF` (asm-generic/socket.h; not in every libc target).
const SO_ATTACH_REUSEPORT_CBPF: libc::c_int = 51;

/// Opens `n` sockets on `addr` in one SO_REUSEPORT group (port 0: the port the first
/// one gets) and, for more than one, steers each datagram to socket
/// `source address mod n` with a classic BPF program run by the kernel: every datagram
/// of one source (a UPS) reaches the same socket, so one worker, in order. Returns the
/// sockets, and whether the steering is in place (an old kernel without it leaves the
/// kernel's own 4-tuple hash).
///
/// SO_REUSEPORT would also let another process of the same user (a second trapgate)
/// join the group and silently take a share of the traps: a group that holds more
/// sockets than these `n` is refused with `AddrInUse`.
pub fn bind_group(addr: SocketAddr, n: usize) -> io::Result<(Vec<UdpSocket>, bool)> {
    // Port 0 with SO_REUSEPORT may be given a port another group of this user already
    // holds (the kernel does not count that a conflict): the group is then refused and
    // bound again, on another free port.
    let mut tries = if addr.port() == 0 { 8 } else { 1 };
    loop {
        tries -= 1;
        let first = bind_shared(addr)?;
        let at = first.local_addr()?;
        let mut group = vec![first];
        for _ in 1..n {
            group.push(bind_shared(at)?);
        }
        if sockets_on(at).is_some_and(|found| found > n) {
            if tries > 0 {
                continue;
            }
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                "another process shares this port with SO_REUSEPORT (another trapgate?)",
            ));
        }
        let steered = n > 1 && steer_by_source(&group[0], at.is_ipv6(), n as u32).is_ok();
        return Ok((group, steered));
    }
}

/// How many UDP sockets of this network namespace are bound to `local` (from
/// /proc/net/udp or udp6); None where it cannot be read.
fn sockets_on(local: SocketAddr) -> Option<usize> {
    let (table, want) = match local {
        SocketAddr::V4(a) => (
            "/proc/net/udp",
            format!(
                "{:08X}:{:04X}",
                u32::from_ne_bytes(a.ip().octets()),
                a.port()
            ),
        ),
        SocketAddr::V6(a) => {
            let words: String = a
                .ip()
                .octets()
                .chunks(4)
                .map(|w| format!("{:08X}", u32::from_ne_bytes([w[0], w[1], w[2], w[3]])))
                .collect();
            ("/proc/net/udp6", format!("{words}:{:04X}", a.port()))
        }
    };
    // The kernel writes that table a page at a time and finds its place again by
    // counting lines, so a socket opened or closed elsewhere while it is read repeats
    // or hides a line: sockets are told apart by inode (counted twice, our own group
    // would look shared), over three readings (one may hide a rival).
    let mut texts = Vec::with_capacity(3);
    for _ in 0..3 {
        texts.push(std::fs::read_to_string(table).ok()?);
    }
    Some(sockets_in(&texts, &want))
}

/// How many distinct sockets (by inode) the /proc/net/udp `texts` list at `local`.
fn sockets_in(texts: &[String], local: &str) -> usize {
    let mut inodes: Vec<&str> = texts
        .iter()
        .flat_map(|text| text.lines().skip(1))
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            (fields.nth(1) == Some(local)).then(|| fields.nth(7).unwrap_or(""))
        })
        .collect();
    inodes.sort_unstable();
    inodes.dedup();
    inodes.len()
}

/// Attaches the steering program to a reuseport group: load the last 32 bits of the
/// IP source address (SKF_NET_OFF: relative to the network header, whatever the
/// program's own start), return it modulo `n`, the index of the socket in the group.
fn steer_by_source(socket: &UdpSocket, ipv6: bool, n: u32) -> io::Result<()> {
    // IPv4 source: bytes 12..16 of the header; IPv6: 8..24, its last word at 20.
    let offset = libc::SKF_NET_OFF + if ipv6 { 20 } else { 12 };
    let code = [
        libc::sock_filter {
            code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16,
            jt: 0,
            jf: 0,
            k: offset as u32,
        },
        libc::sock_filter {
            code: (libc::BPF_ALU | libc::BPF_MOD | libc::BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: n,
        },
        libc::sock_filter {
            code: (libc::BPF_RET | libc::BPF_A) as u16,
            jt: 0,
            jf: 0,
            k: 0,
        },
    ];
    let program = libc::sock_fprog {
        len: code.len() as u16,
        filter: code.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: a valid socket and a sock_fprog pointing at `code`, both alive for the
    // call; the kernel copies the program.
    let set = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_ATTACH_REUSEPORT_CBPF,
            (&program as *const libc::sock_fprog).cast(),
            size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if set != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Control-message room per datagram, in u64 words (aligned for cmsghdr): enough for
/// one SCM_TIMESTAMPNS.
const CONTROL_WORDS: usize = 8;

/// Buffers for one `recvmmsg` batch, allocated once and reused for every batch.
pub struct RecvBatch {
    bufs: Vec<u8>,
    addrs: Vec<libc::sockaddr_storage>,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
    controls: Vec<u64>,
    received: usize,
    /// Whether every header has been set up once.
    armed: bool,
}

impl Default for RecvBatch {
    fn default() -> Self {
        RecvBatch::new()
    }
}

impl RecvBatch {
    /// Buffers for `BATCH` datagrams of up to `MAX_DATAGRAM` bytes.
    pub fn new() -> RecvBatch {
        RecvBatch {
            bufs: vec![0; BATCH * MAX_DATAGRAM],
            // SAFETY: sockaddr_storage, iovec and mmsghdr are plain C structs for which
            // all-zero bytes are a valid value.
            addrs: vec![unsafe { zeroed() }; BATCH],
            iovecs: vec![unsafe { zeroed() }; BATCH],
            headers: vec![unsafe { zeroed() }; BATCH],
            controls: vec![0; BATCH * CONTROL_WORDS],
            received: 0,
            armed: false,
        }
    }

    /// Receives up to `BATCH` datagrams from `fd` without blocking; `WouldBlock` when
    /// none is waiting.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        // Every header is set up once; after that only those the kernel wrote in the
        // last call (the datagrams it returned) are set again. The pointers point into
        // this struct's heap buffers, which do not move.
        let dirty = if self.armed { self.received } else { BATCH };
        self.armed = true;
        self.received = 0;
        for i in 0..dirty {
            self.iovecs[i] = libc::iovec {
                iov_base: self.bufs[i * MAX_DATAGRAM..].as_mut_ptr().cast(),
                iov_len: MAX_DATAGRAM,
            };
            let header = &mut self.headers[i];
            header.msg_len = 0;
            header.msg_hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            header.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            header.msg_hdr.msg_iov = &mut self.iovecs[i];
            header.msg_hdr.msg_iovlen = 1;
            header.msg_hdr.msg_control = self.controls[i * CONTROL_WORDS..].as_mut_ptr().cast();
            header.msg_hdr.msg_controllen = CONTROL_WORDS * size_of::<u64>();
            header.msg_hdr.msg_flags = 0;
        }
        // SAFETY: `headers` holds BATCH initialised mmsghdr, each naming one iovec of
        // MAX_DATAGRAM writable bytes inside `bufs` and one sockaddr_storage in `addrs`;
        // all stay alive and unaliased for the duration of the call.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.headers.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        self.received = n as usize;
        Ok(self.received)
    }

    /// When the kernel received datagram `i` of the last batch, nanoseconds since the
    /// Unix epoch (None if the kernel did not say).
    pub fn arrival(&self, i: usize) -> Option<u64> {
        if i >= self.received {
            return None;
        }
        let header = &self.headers[i].msg_hdr;
        // SAFETY: the kernel filled this header's control buffer (msg_controllen says how
        // much); CMSG_FIRSTHDR/CMSG_NXTHDR only walk within it, and a SCM_TIMESTAMPNS
        // message carries a timespec, read unaligned.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(header);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_SOCKET
                    && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
                {
                    let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                    return Some(crate::time::ns::from_timespec(
                        ts.tv_sec as u64,
                        ts.tv_nsec as u64,
                    ));
                }
                cmsg = libc::CMSG_NXTHDR(header, cmsg);
            }
        }
        None
    }

    /// Datagram `i` of the last batch: its source, its bytes, and whether the kernel cut
    /// it to fit the buffer.
    pub fn get(&self, i: usize) -> Option<(SocketAddr, &[u8], bool)> {
        if i >= self.received {
            return None;
        }
        let header = &self.headers[i];
        let len = (header.msg_len as usize).min(MAX_DATAGRAM);
        let truncated = header.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        let source = to_socket_addr(&self.addrs[i])?;
        Some((
            source,
            &self.bufs[i * MAX_DATAGRAM..i * MAX_DATAGRAM + len],
            truncated,
        ))
    }
}

/// `SO_MEMINFO` (asm-generic/socket.h; not in every libc target).
const SO_MEMINFO: libc::c_int = 55;

/// Datagrams the kernel dropped on socket `fd` because its receive buffer was full
/// (`SK_MEMINFO_DROPS` of `SO_MEMINFO`, the socket's own counter, which /proc/net/udp
/// shows as `drops`). None where the kernel does not say.
pub fn socket_drops(fd: RawFd) -> Option<u64> {
    let mut info = [0u32; libc::SK_MEMINFO_DROPS as usize + 1];
    let mut len = size_of_val(&info) as libc::socklen_t;
    // SAFETY: a valid socket and a buffer of `len` writable bytes; the kernel writes at
    // most `len` bytes and says how many.
    let got = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            SO_MEMINFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    let filled = len as usize / size_of::<u32>();
    (got == 0 && filled > libc::SK_MEMINFO_DROPS as usize)
        .then(|| u64::from(info[libc::SK_MEMINFO_DROPS as usize]))
}

/// Datagrams to send with Linux `sendmmsg(2)`, many per system call: the fan-out of a
/// shutdown to thousands of recorders, the virtual UPS's answers. The buffers are kept
/// and reused between flushes.
#[derive(Default)]
pub struct SendBatch {
    data: Vec<u8>,
    /// Each datagram: where to, and its bytes in `data` (start, length). Datagrams of
    /// the same bytes queued one after another share them (a fan-out's order, encoded
    /// once per community, to each of thousands of recorders).
    items: Vec<(SocketAddr, usize, usize)>,
    /// The kernel's form of the addresses of the datagrams (or runs) of one
    /// `sendmmsg`: made per call, so that the queue keeps 48 bytes a datagram, not a
    /// `sockaddr_storage` each.
    addrs: Vec<socket2::SockAddr>,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
    /// `flush_some`'s own, kept between flushes: the runs (first item, size, count,
    /// last item), each item's next in its run, each destination's open run, the
    /// datagrams' fates, the control messages.
    runs: Vec<(usize, usize, usize, usize)>,
    link: Vec<usize>,
    open: Vec<(usize, usize)>,
    fate: Vec<Fate>,
    cmsgs: Vec<[u64; 4]>,
}

// SAFETY: the raw pointers in `iovecs` and `headers` point into this batch's own
// `data` and `addrs`; they are written at the start of every `flush` chunk, read only by
// the `sendmmsg` call that follows, and emptied when the flush ends. Nothing is shared:
// moving the batch to another thread (a receive worker's) moves everything they name.
unsafe impl Send for SendBatch {}

/// Datagrams per `sendmmsg` call (the kernel's UIO_MAXIOV).
const SEND_CHUNK: usize = 1024;

impl SendBatch {
    /// An empty batch.
    pub fn new() -> SendBatch {
        SendBatch::default()
    }

    /// Datagrams waiting.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Makes room for `datagrams` datagrams of `bytes` bytes in all, and touches it,
    /// so that a fan-out that fills it neither grows it nor faults its pages in while
    /// its orders wait (a gateway's start, not its first outage, pays for it).
    pub fn reserve(&mut self, datagrams: usize, bytes: usize) {
        self.data.reserve(bytes);
        self.items.reserve(datagrams);
        crate::engine::room::touch(&mut self.data);
        crate::engine::room::touch(&mut self.items);
    }

    /// Queues `payload` for `to`. The same bytes as the datagram queued just before
    /// are not copied again: the two share them.
    pub fn push(&mut self, to: SocketAddr, payload: &[u8]) {
        if let Some(&(_, start, len)) = self.items.last()
            && self.data[start..start + len] == *payload
        {
            self.items.push((to, start, len));
            return;
        }
        let start = self.data.len();
        self.data.extend_from_slice(payload);
        self.items.push((to, start, payload.len()));
    }

    /// Sends everything queued on `fd` (blocking the caller no longer than the kernel
    /// takes to copy), then empties the batch. Returns the datagrams sent and the
    /// destinations that failed, with their errors.
    pub fn flush(&mut self, fd: RawFd) -> (usize, Vec<(SocketAddr, io::Error)>) {
        let mut sent = 0;
        let mut failed = Vec::new();
        let mut next = 0;
        while next < self.items.len() {
            let chunk = &self.items[next..(next + SEND_CHUNK).min(self.items.len())];
            self.iovecs.clear();
            self.headers.clear();
            self.addrs.clear();
            self.addrs
                .extend(chunk.iter().map(|(to, _, _)| socket2::SockAddr::from(*to)));
            for (_, start, len) in chunk {
                self.iovecs.push(libc::iovec {
                    iov_base: self.data[*start..].as_ptr() as *mut libc::c_void,
                    iov_len: *len,
                });
            }
            for (i, addr) in self.addrs.iter().enumerate() {
                // SAFETY: an all-zero mmsghdr is a valid value; the fields that matter are set below.
                let mut h: libc::mmsghdr = unsafe { zeroed() };
                h.msg_hdr.msg_name = addr.as_ptr() as *mut libc::c_void;
                h.msg_hdr.msg_namelen = addr.len();
                h.msg_hdr.msg_iov = &mut self.iovecs[i];
                h.msg_hdr.msg_iovlen = 1;
                self.headers.push(h);
            }
            // SAFETY: `headers` holds chunk.len() initialised mmsghdr, each naming one
            // iovec over `data` and one socket address in `addrs`; none of them is
            // touched until the call returns. The kernel only reads them.
            let n = unsafe {
                libc::sendmmsg(
                    fd,
                    self.headers.as_mut_ptr(),
                    self.headers.len() as libc::c_uint,
                    0,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // The first datagram of the chunk failed: note it and go on after it.
                failed.push((chunk[0].0, e));
                next += 1;
                continue;
            }
            if n == 0 {
                next += 1;
                continue;
            }
            sent += n as usize;
            next += n as usize;
        }
        self.items.clear();
        self.data.clear();
        self.iovecs.clear();
        self.headers.clear();
        self.addrs.clear();
        (sent, failed)
    }
}

/// The largest UDP payload that no IPv4 path needs to fragment: Linux never takes a
/// path's MTU below 552 bytes (`net.ipv4.route.min_pmtu`), less 20 bytes of IP header
/// and 8 of UDP.
pub const WHOLE_ON_ANY_PATH: usize = 524;

/// How an IPv4 socket's batches leave, chosen batch by batch (`flush`). By default
/// (`IP_PMTUDISC_WANT`) Linux marks a datagram Don't Fragment yet may fragment it, so
/// it draws each one a hashed IP ID per destination: in a fan-out to 5,000 recorders
/// that draw, a cache miss per address, was a fifth of the sending's CPU. A batch whose
/// every datagram fits `WHOLE_ON_ANY_PATH` (orders, polls, SETs) goes with
/// `IP_PMTUDISC_PROBE` instead: the same Don't Fragment on the wire, IP ID 0 (RFC 6864's
/// atomic datagram), nothing drawn. A batch with a larger datagram
/// (the virtual UPS's answers, up to `max_message_size`) goes the default way, so that
/// a path that needs it still fragments it, as the socket was first set (the kernel's
/// default, `WANT`, or what `net.ipv4.ip_no_pmtu_disc` made it). IPv6 has no
/// per-datagram ID: untouched.
#[derive(Debug, Default)]
pub struct Whole {
    /// What the socket is set to (None: as it was first, not yet changed).
    probe: Option<bool>,
    /// How the socket was first set, read before the first change.
    first: Option<libc::c_int>,
}

impl Whole {
    /// Sends `batch` on `fd` as `SendBatch::flush`, the socket set as the batch needs.
    pub fn flush(
        &mut self,
        batch: &mut SendBatch,
        fd: RawFd,
    ) -> (usize, Vec<(SocketAddr, io::Error)>) {
        if batch.items.first().is_some_and(|(to, _, _)| to.is_ipv4()) {
            let small = batch
                .items
                .iter()
                .all(|&(_, _, len)| len <= WHOLE_ON_ANY_PATH);
            // Set only on a change. A socket that refuses keeps what it had (and is
            // asked again next time).
            if self.probe.unwrap_or(false) != small {
                if self.first.is_none() {
                    self.first = int_option(fd, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER).ok();
                }
                let mode = match small {
                    true => libc::IP_PMTUDISC_PROBE,
                    false => self.first.unwrap_or(libc::IP_PMTUDISC_WANT),
                };
                let set = set_int_option(fd, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, mode);
                self.probe = set.is_ok().then_some(small).or(self.probe);
            }
        }
        batch.flush(fd)
    }
}

/// What became of one queued datagram in `SendBatch::flush_some`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Sent.
    Sent,
    /// Refused by the kernel (not for a full buffer): passed over.
    Failed,
    /// Still queued: the socket's send buffer is full.
    Queued,
}

/// `setsockopt`/`cmsg` level and type of UDP generic segmentation offload (Linux 4.18):
/// one send of many equal datagrams to one address, cut by the kernel after the stack.
const SOL_UDP: libc::c_int = 17;
const UDP_SEGMENT: libc::c_int = 103;
/// Datagrams in one segmented send, at most (the kernel's UDP_MAX_SEGMENTS is 64 or
/// more), and their bytes.
const GSO_SEGMENTS: usize = 64;
const GSO_BYTES: usize = 60_000;
/// The largest datagram sent segmented: one that fits an Ethernet frame (a larger one
/// would be refused, segments are not fragmented).
const GSO_SIZE_MAX: usize = 1_400;

impl SendBatch {
    /// Sends what is queued until the socket's send buffer is full; returns the fate of
    /// each datagram, in the order they were queued, and keeps the ones still queued (in
    /// that order). With `segment`, the datagrams of equal size to one address go out
    /// together in one segmented send (UDP GSO), several per `sendmmsg`: each
    /// destination's datagrams keep their order. A kernel without it clears `segment`
    /// and they go one by one.
    pub fn flush_some(&mut self, fd: RawFd, segment: &mut bool) -> &[Fate] {
        self.fate.clear();
        self.fate.resize(self.items.len(), Fate::Queued);
        // Planned again, one by one, if the kernel refuses a segmented send.
        while self.send_runs(fd, segment) {}
        self.iovecs.clear();
        self.headers.clear();
        self.keep_queued();
        &self.fate
    }

    /// Keeps the datagrams still queued (by `fate`), in order, their bytes at the front.
    fn keep_queued(&mut self) {
        if self.fate.iter().all(|f| *f != Fate::Queued) {
            self.items.clear();
            self.data.clear();
        } else {
            let mut at = 0;
            let mut k = 0;
            // The last bytes kept: where they were, where they are now. Datagrams that
            // share bytes are next to each other; the bytes move once. Every move is
            // toward the front, from bytes after all those moved before.
            let mut moved: Option<(usize, usize)> = None;
            let fate = &self.fate;
            let data = &mut self.data;
            self.items.retain_mut(|item| {
                let keep = fate[k] == Fate::Queued;
                k += 1;
                if keep {
                    match moved {
                        Some((from, to)) if from == item.1 => item.1 = to,
                        _ => {
                            data.copy_within(item.1..item.1 + item.2, at);
                            moved = Some((item.1, at));
                            item.1 = at;
                            at += item.2;
                        }
                    }
                }
                keep
            });
            self.data.truncate(at);
        }
    }

    /// Plans the datagrams still queued into runs (with `segment`, the equal ones to one
    /// destination together) and sends them until the send buffer is full, setting their
    /// fates. True if the kernel refused segmentation: `segment` is then cleared and
    /// nothing of the refused run was sent, so the caller plans again.
    fn send_runs(&mut self, fd: RawFd, segment: &mut bool) -> bool {
        const END: usize = usize::MAX;
        let n = self.items.len();
        self.runs.clear();
        self.open.clear();
        self.link.clear();
        self.link.resize(n, END);
        for i in (0..n).filter(|&i| self.fate[i] == Fate::Queued) {
            let len = self.items[i].2;
            let at = self
                .open
                .iter()
                .position(|&(first, _)| self.items[first].0 == self.items[i].0);
            if let Some(k) = at
                && *segment
                && len <= GSO_SIZE_MAX
            {
                let r = self.open[k].1;
                let (_, size, count, last) = self.runs[r];
                if size == len && count < GSO_SEGMENTS && (count + 1) * len <= GSO_BYTES {
                    self.link[last] = i;
                    self.runs[r].2 += 1;
                    self.runs[r].3 = i;
                    continue;
                }
            }
            self.runs.push((i, len, 1, i));
            match at {
                Some(k) => self.open[k].1 = self.runs.len() - 1,
                None => self.open.push((i, self.runs.len() - 1)),
            }
        }
        let mut next = 0;
        let mut blocked = false;
        while next < self.runs.len() && !blocked {
            let end = (next + SEND_CHUNK).min(self.runs.len());
            self.iovecs.clear();
            self.headers.clear();
            self.cmsgs.clear();
            self.cmsgs.resize(end - next, [0u64; 4]);
            self.addrs.clear();
            self.addrs.extend(
                self.runs[next..end]
                    .iter()
                    .map(|&(first, _, _, _)| socket2::SockAddr::from(self.items[first].0)),
            );
            for &(first, _, _, _) in &self.runs[next..end] {
                let mut i = first;
                while i != END {
                    let (_, start, len) = &self.items[i];
                    self.iovecs.push(libc::iovec {
                        iov_base: self.data[*start..].as_ptr() as *mut libc::c_void,
                        iov_len: *len,
                    });
                    i = self.link[i];
                }
            }
            let mut iov = 0;
            for (r, &(_, size, count, _)) in self.runs[next..end].iter().enumerate() {
                let addr = &self.addrs[r];
                // SAFETY: an all-zero mmsghdr is a valid value; the fields that matter are set below.
                let mut h: libc::mmsghdr = unsafe { zeroed() };
                h.msg_hdr.msg_name = addr.as_ptr() as *mut libc::c_void;
                h.msg_hdr.msg_namelen = addr.len();
                h.msg_hdr.msg_iov = &mut self.iovecs[iov];
                h.msg_hdr.msg_iovlen = count;
                iov += count;
                if count > 1 {
                    let room = &mut self.cmsgs[r];
                    // SAFETY: `room` is 32 bytes, 8-aligned: room for CMSG_SPACE(2) (24 on
                    // Linux); CMSG_FIRSTHDR of a header whose control buffer is `room`
                    // points into it, and CMSG_DATA past its header, within it.
                    unsafe {
                        h.msg_hdr.msg_control = room.as_mut_ptr().cast();
                        h.msg_hdr.msg_controllen =
                            libc::CMSG_SPACE(core::mem::size_of::<u16>() as u32) as usize;
                        let c = libc::CMSG_FIRSTHDR(&h.msg_hdr);
                        (*c).cmsg_level = SOL_UDP;
                        (*c).cmsg_type = UDP_SEGMENT;
                        (*c).cmsg_len = libc::CMSG_LEN(core::mem::size_of::<u16>() as u32) as usize;
                        core::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), size as u16);
                    }
                }
                self.headers.push(h);
            }
            // SAFETY: `headers` holds end − next initialised mmsghdr, each naming its
            // iovecs over `data`, one socket address in `addrs` and, segmented, its
            // control message in `cmsgs`; none of them is touched until the call
            // returns. The kernel only reads them.
            let sent = unsafe {
                libc::sendmmsg(
                    fd,
                    self.headers.as_mut_ptr(),
                    self.headers.len() as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            let mark = |fate: &mut [Fate], link: &[usize], first: usize, f: Fate| {
                let mut i = first;
                while i != END {
                    fate[i] = f;
                    i = link[i];
                }
            };
            if sent < 0 {
                let e = io::Error::last_os_error();
                let (first, _, count, _) = self.runs[next];
                match e.kind() {
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::WouldBlock => blocked = true,
                    // No segmentation here (an older kernel, a device without it): every
                    // run goes again, one datagram at a time.
                    _ if count > 1 && *segment => {
                        *segment = false;
                        return true;
                    }
                    _ => {
                        mark(&mut self.fate, &self.link, first, Fate::Failed);
                        next += 1;
                    }
                }
                continue;
            }
            let sent = (sent as usize).clamp(1, end - next);
            for &(first, _, _, _) in &self.runs[next..next + sent] {
                mark(&mut self.fate, &self.link, first, Fate::Sent);
            }
            next += sent;
        }
        false
    }
}

/// Kills every process of process group `pgid` with SIGKILL: a command started in a
/// group of its own (its group id is its pid), and whatever it started.
pub fn kill_group(pgid: u32) -> io::Result<()> {
    let pgid = libc::pid_t::try_from(pgid)
        .ok()
        .filter(|p| *p > 1)
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: kill(2) takes plain integers; a negative pid names the process group, and
    // the check above keeps it from ever being -1 (every process) or 0 (our own group).
    if unsafe { libc::kill(-pgid, libc::SIGKILL) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Raises this process's open-file limit to its hard limit (a demo site of thousands of
/// recorders opens a socket each); returns the limit now in force.
pub fn raise_fd_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit with a valid resource and a pointer to a local struct.
    unsafe {
        let mut lim: libc::rlimit = zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                return want.rlim_cur as u64;
            }
        }
        lim.rlim_cur as u64
    }
}

/// A kernel-filled `sockaddr_storage` as a `SocketAddr` (IPv4 or IPv6 only).
fn to_socket_addr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match storage.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, and
            // sockaddr_storage is large and aligned enough for it.
            let a =
                unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::new(IpAddr::V4(ip), u16::from_be(a.sin_port)))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let a = unsafe {
                &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::new(IpAddr::V6(ip), u16::from_be(a.sin6_port)))
        }
        _ => None,
    }
}

// --- The host's addresses (a pair's role) ---------------------------------------------

/// Every address of this host's interfaces (`getifaddrs`).
pub fn local_addresses() -> Vec<IpAddr> {
    let mut found = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list it allocates; it is walked read-only and freed
    // once with freeifaddrs.
    unsafe {
        if libc::getifaddrs(&mut list) != 0 {
            return found;
        }
        let mut at = list;
        while !at.is_null() {
            let a = (*at).ifa_addr;
            if !a.is_null() {
                match i32::from((*a).sa_family) {
                    libc::AF_INET => {
                        let sin = &*(a as *const libc::sockaddr_in);
                        found.push(IpAddr::from(
                            u32::from_be(sin.sin_addr.s_addr).to_be_bytes(),
                        ));
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(a as *const libc::sockaddr_in6);
                        found.push(IpAddr::from(sin6.sin6_addr.s6_addr));
                    }
                    _ => {}
                }
            }
            at = (*at).ifa_next;
        }
        libc::freeifaddrs(list);
    }
    found
}

/// A netlink socket told of every address added or removed on this host: readable when
/// the pair's address may have moved.
pub struct AddressWatch(std::os::fd::OwnedFd);

impl AddressWatch {
    /// Opens it (non-blocking).
    pub fn open() -> io::Result<AddressWatch> {
        // SAFETY: plain socket calls on a descriptor owned from here on.
        unsafe {
            let fd = libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            );
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            let owned = <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd);
            let mut sa: libc::sockaddr_nl = std::mem::zeroed();
            sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
            sa.nl_groups = (libc::RTMGRP_IPV4_IFADDR | libc::RTMGRP_IPV6_IFADDR) as u32;
            let bound = libc::bind(
                fd,
                (&sa as *const libc::sockaddr_nl).cast(),
                size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            );
            if bound != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(AddressWatch(owned))
        }
    }

    /// Reads what the kernel said (its content is not needed: the addresses are read
    /// again whole).
    pub fn drain(&self) {
        let mut buf = [0u8; 8192];
        loop {
            // SAFETY: reads into a buffer of its length.
            let n = unsafe {
                libc::recv(
                    self.0.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n <= 0 {
                return;
            }
        }
    }

    /// Its descriptor, for the loop.
    pub fn fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    /// Three sinks on 127.0.0.41–43, and a batch of 300 datagrams to them: interleaved
    /// destinations, runs of equal sizes broken by others, one too large to be
    /// segmented. Returns the sinks, the batch and what each sink should get.
    fn three_sinks_and_a_batch() -> (Vec<UdpSocket>, SendBatch, Vec<Vec<Vec<u8>>>) {
        let sinks: Vec<UdpSocket> = (0..3)
            .map(|k| UdpSocket::bind(format!("127.0.0.{}:0", 41 + k)).unwrap())
            .collect();
        for s in &sinks {
            s.set_read_timeout(Some(std::time::Duration::from_millis(500)))
                .unwrap();
        }
        let to: Vec<SocketAddr> = sinks.iter().map(|s| s.local_addr().unwrap()).collect();
        let mut batch = SendBatch::new();
        let mut queued: Vec<Vec<Vec<u8>>> = vec![Vec::new(); 3];
        for i in 0..300usize {
            let d = i % 3;
            let len = match i {
                150 => 1_500,
                _ if i % 17 == 0 => 61,
                _ => 90,
            };
            let payload: Vec<u8> = (0..len).map(|b| (b + i) as u8).collect();
            batch.push(to[d], &payload);
            queued[d].push(payload);
        }
        (sinks, batch, queued)
    }

    /// Asserts that each sink received what it should, once each, in order.
    fn each_received(sinks: &[UdpSocket], queued: &[Vec<Vec<u8>>]) {
        for (d, s) in sinks.iter().enumerate() {
            let mut got = Vec::new();
            let mut buf = [0u8; 2048];
            while let Ok(n) = s.recv(&mut buf) {
                got.push(buf[..n].to_vec());
            }
            let first_wrong = got.iter().zip(&queued[d]).position(|(g, q)| g != q);
            assert!(
                got.len() == queued[d].len() && first_wrong.is_none(),
                "destination {d}: {} datagrams of {}, the first out of place at {first_wrong:?}",
                got.len(),
                queued[d].len()
            );
        }
    }

    #[test]
    fn segmented_sends_arrive_as_the_datagrams_queued_each_destination_in_order() {
        let (sinks, mut batch, queued) = three_sinks_and_a_batch();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut segment = true;
        let fate = batch.flush_some(tx.as_raw_fd(), &mut segment);
        assert!(fate.iter().all(|f| *f == Fate::Sent), "{fate:?}");
        assert!(batch.is_empty());
        assert!(segment, "this kernel (4.18 or later) segments UDP sends");
        each_received(&sinks, &queued);
    }

    #[test]
    fn a_refused_segmented_send_sends_each_datagram_once_one_by_one() {
        let (sinks, mut batch, queued) = three_sinks_and_a_batch();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        // A socket without UDP checksums: the kernel refuses it every segmented send
        // (EINVAL), as it would on a device that cannot segment, and sends the single
        // datagrams before the first refused run.
        set_int_option(tx.as_raw_fd(), libc::SOL_SOCKET, libc::SO_NO_CHECK, 1)
            .expect("SO_NO_CHECK");
        let mut segment = true;
        let fate = batch.flush_some(tx.as_raw_fd(), &mut segment);
        assert!(fate.iter().all(|f| *f == Fate::Sent), "{fate:?}");
        assert!(batch.is_empty());
        assert!(
            !segment,
            "segmentation given up after the kernel refused it"
        );
        each_received(&sinks, &queued);
    }

    /// Three sinks on 127.0.0.`first` and the two addresses after it, and where they are.
    fn sinks_from(first: u8) -> (Vec<UdpSocket>, Vec<SocketAddr>) {
        let sinks: Vec<UdpSocket> = (first..first + 3)
            .map(|k| UdpSocket::bind(format!("127.0.0.{k}:0")).unwrap())
            .collect();
        let to = sinks.iter().map(|s| s.local_addr().unwrap()).collect();
        (sinks, to)
    }

    /// Receives what `sink` has (until 200 ms of nothing).
    fn drain(sink: &UdpSocket) -> Vec<Vec<u8>> {
        sink.set_read_timeout(Some(std::time::Duration::from_millis(200)))
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        while let Ok(n) = sink.recv(&mut buf) {
            got.push(buf[..n].to_vec());
        }
        got
    }

    #[test]
    fn equal_datagrams_queued_in_a_row_share_their_bytes_and_each_arrives_whole() {
        let (sinks, to) = sinks_from(44);
        let order = vec![0x30u8; 120];
        let mut other = order.clone();
        other[119] = 0x31;
        let tx = bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        let mut batch = SendBatch::new();
        // A fan-out's order to each sink, twice, with another datagram between, then a
        // shorter one that matches the order's first bytes (not the same datagram).
        for payload in [&order, &order, &order, &other, &order, &order, &order] {
            for t in &to {
                batch.push(*t, payload);
            }
        }
        batch.push(to[0], &order[..60]);
        assert_eq!(
            batch.data.len(),
            3 * 120 + 60,
            "each run of equal datagrams is one copy of its bytes"
        );
        let (sent, failed) = batch.flush(tx.as_raw_fd());
        assert_eq!((sent, failed.len()), (22, 0));
        let mut want = vec![order.clone(); 7];
        want[3] = other.clone();
        for (k, sink) in sinks.iter().enumerate() {
            if k == 0 {
                want.push(order[..60].to_vec());
            }
            assert_eq!(drain(sink), want, "sink {k}");
            if k == 0 {
                want.pop();
            }
        }
    }

    #[test]
    fn what_stays_queued_keeps_its_shared_bytes() {
        let (sinks, to) = sinks_from(47);
        let (a, b) = (vec![0xaau8; 70], vec![0xbbu8; 90]);
        let mut batch = SendBatch::new();
        for (t, p) in [(0, &a), (1, &a), (2, &a), (0, &b), (1, &b), (2, &b)] {
            batch.push(to[t], p);
        }
        assert_eq!(batch.data.len(), 160);
        // As if the send buffer filled: the first of each run sent, the rest still queued.
        batch.fate = vec![
            Fate::Sent,
            Fate::Queued,
            Fate::Queued,
            Fate::Sent,
            Fate::Queued,
            Fate::Queued,
        ];
        batch.keep_queued();
        assert_eq!(batch.len(), 4);
        assert_eq!(batch.data.len(), 160, "each kept run's bytes once");
        // More of the same bytes after what was kept still share them.
        batch.push(to[0], &b);
        assert_eq!(batch.data.len(), 160);
        let tx = bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        let (sent, failed) = batch.flush(tx.as_raw_fd());
        assert_eq!((sent, failed.len()), (5, 0));
        assert_eq!(drain(&sinks[0]), vec![b.clone()]);
        assert_eq!(drain(&sinks[1]), vec![a.clone(), b.clone()]);
        assert_eq!(drain(&sinks[2]), vec![a.clone(), b.clone()]);
    }

    #[test]
    fn a_send_batch_delivers_every_datagram_in_order() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let to = rx.local_addr().unwrap();
        let tx = bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        let mut batch = SendBatch::new();
        for i in 0..250u16 {
            batch.push(to, &i.to_be_bytes());
        }
        let (sent, failed) = batch.flush(tx.as_raw_fd());
        assert_eq!((sent, failed.len()), (250, 0));
        assert!(batch.is_empty());
        let mut buf = [0u8; 8];
        for i in 0..250u16 {
            let (n, from) = rx.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], &i.to_be_bytes());
            assert_eq!(from, tx.local_addr().unwrap());
        }
    }

    #[test]
    fn a_batch_receives_several_datagrams_with_their_sources() {
        let rx = bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        let to = rx.local_addr().unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..5u8 {
            tx.send_to(&[i; 10], to).unwrap();
        }
        let mut batch = RecvBatch::new();
        let mut got = Vec::new();
        // Loopback delivery is immediate, but allow the scheduler a moment.
        for _ in 0..100 {
            match batch.recv(rx.as_raw_fd()) {
                Ok(n) => {
                    for i in 0..n {
                        let (src, data, truncated) = batch.get(i).unwrap();
                        let arrived = batch.arrival(i).expect("SO_TIMESTAMPNS is on");
                        let now = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .unwrap()
                            .as_nanos() as u64;
                        assert!(
                            arrived <= now && now - arrived < 5_000_000_000,
                            "{arrived} vs {now}"
                        );
                        assert_eq!(src, tx.local_addr().unwrap());
                        assert!(!truncated);
                        got.push(data.to_vec());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if got.len() == 5 {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(got, (0..5u8).map(|i| vec![i; 10]).collect::<Vec<_>>());
        // The loop ended on WouldBlock: a failed receive leaves no stale datagram behind.
        assert!(batch.get(0).is_none() && batch.arrival(0).is_none());
    }

    #[test]
    fn what_the_kernel_drops_is_counted() {
        let rx = bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        assert_eq!(socket_drops(rx.as_raw_fd()), Some(0));
        // A receive buffer too small for the burst: the kernel drops the rest.
        socket2::SockRef::from(&rx)
            .set_recv_buffer_size(4096)
            .unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sent = 500;
        for _ in 0..sent {
            tx.send_to(&[7u8; 200], rx.local_addr().unwrap()).unwrap();
        }
        let mut batch = RecvBatch::new();
        let mut received = 0;
        while let Ok(n) = batch.recv(rx.as_raw_fd()) {
            if n == 0 {
                break;
            }
            received += n as u64;
        }
        let dropped = socket_drops(rx.as_raw_fd()).unwrap();
        assert!(dropped > 0, "a 4 KiB buffer held all {sent}");
        assert_eq!(
            received + dropped,
            sent,
            "received {received}, dropped {dropped}"
        );
    }

    #[test]
    fn a_group_steers_each_source_address_to_one_socket() {
        let (group, steered) = bind_group("127.0.0.1:0".parse().unwrap(), 2).unwrap();
        let to = group[0].local_addr().unwrap();
        assert_eq!(group[1].local_addr().unwrap(), to, "one port for the group");
        if !steered {
            crate::testing::skip("this kernel takes no reuseport steering program");
            return;
        }
        // Three source ports from each of two addresses: 127.0.0.2 is even (socket 0),
        // 127.0.0.3 odd (socket 1), whatever the port.
        for from in ["127.0.0.2", "127.0.0.3"] {
            for _ in 0..3 {
                let tx = UdpSocket::bind((from, 0)).unwrap();
                tx.send_to(from.as_bytes(), to).unwrap();
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        let mut batch = RecvBatch::new();
        for (i, want) in ["127.0.0.2", "127.0.0.3"].iter().enumerate() {
            let n = batch.recv(group[i].as_raw_fd()).unwrap();
            assert_eq!(n, 3, "socket {i} got {n} datagrams");
            for k in 0..n {
                let (src, payload, _) = batch.get(k).unwrap();
                assert_eq!(src.ip().to_string(), *want);
                assert_eq!(payload, want.as_bytes());
            }
        }
    }

    #[test]
    fn a_second_gateway_on_the_same_port_is_refused() {
        let (group, _) = bind_group("127.0.0.1:0".parse().unwrap(), 2).unwrap();
        let at = group[0].local_addr().unwrap();
        let e = bind_group(at, 2).expect_err("a second group on the port");
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        assert!(e.to_string().contains("another trapgate?"), "{e}");
        // Its sockets were closed: the first group alone holds the port again.
        assert_eq!(sockets_on(at), Some(2));
    }

    #[test]
    fn gateways_on_port_zero_each_get_a_port_of_their_own() {
        // The kernel may give a reuseport socket bound to port 0 a port that another
        // group of this user holds: hundreds of groups make that all but certain.
        let mut groups = Vec::new();
        let mut ports = std::collections::BTreeSet::new();
        for i in 0..800 {
            let (group, _) = bind_group("127.0.0.1:0".parse().unwrap(), 1)
                .unwrap_or_else(|e| panic!("group {i} on port 0: {e}"));
            let at = group[0].local_addr().unwrap();
            assert!(
                ports.insert(at.port()),
                "group {i} joined port {}",
                at.port()
            );
            groups.push(group);
        }
    }

    #[test]
    fn an_ipv6_group_is_steered_too() {
        let Ok((group, steered)) = bind_group("[::1]:0".parse().unwrap(), 2) else {
            crate::testing::skip("no IPv6 loopback here");
            return;
        };
        if !steered {
            crate::testing::skip("this kernel takes no reuseport steering program");
            return;
        }
        let to = group[0].local_addr().unwrap();
        // ::1 ends in 1: socket 1, from every port.
        for _ in 0..3 {
            let tx = UdpSocket::bind("[::1]:0").unwrap();
            tx.send_to(b"six", to).unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        let mut batch = RecvBatch::new();
        assert_eq!(batch.recv(group[1].as_raw_fd()).unwrap(), 3);
        assert!(
            batch.recv(group[0].as_raw_fd()).is_err(),
            "socket 0 got nothing"
        );
    }

    #[test]
    fn a_line_the_kernel_repeats_is_one_socket() {
        let head = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n";
        let line = |sl: u32, port: &str, inode: u32| {
            format!(
                "{sl:4}: 0100007F:{port} 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 {inode} 2 0000000000000000 0\n"
            )
        };
        // Two group members, one of them written twice across a page boundary, and a
        // socket on another port.
        let text = [
            head.to_string(),
            line(1, "8B0D", 4411),
            line(2, "8B0D", 4412),
            line(3, "8B0E", 4413),
            line(3, "8B0D", 4412),
        ]
        .concat();
        assert_eq!(sockets_in(std::slice::from_ref(&text), "0100007F:8B0D"), 2);
        // The same sockets read again are the same sockets.
        assert_eq!(
            sockets_in(&[text.clone(), text.clone()], "0100007F:8B0D"),
            2
        );
        // A rival one reading hid is seen in another.
        let seen = format!("{text}{}", line(4, "8B0D", 4414));
        assert_eq!(sockets_in(&[text, seen.clone()], "0100007F:8B0D"), 3);
        assert_eq!(sockets_in(&[seen], "0100007F:8B0F"), 0);
    }

    #[test]
    fn a_group_is_not_refused_while_other_sockets_come_and_go() {
        // Enough sockets for the kernel's table to span pages, and a thread opening and
        // closing more while groups are bound (as other gateways and tests do).
        let kept: Vec<UdpSocket> = (0..300)
            .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let churn = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    drop(UdpSocket::bind("127.0.0.1:0").unwrap());
                }
            })
        };
        let (mut refused, mut missed) = (0, 0);
        for _ in 0..200 {
            // A port of its own (port 0 would hide a refusal behind its retries).
            let at = UdpSocket::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap();
            match bind_group(at, 2) {
                Ok((group, _)) => {
                    // And a rival on it is still seen.
                    missed += usize::from(bind_group(at, 2).is_ok());
                    drop(group);
                }
                Err(e) if e.to_string().contains("another trapgate?") => refused += 1,
                Err(_) => {} // the churning thread took the port first
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        churn.join().unwrap();
        drop(kept);
        assert_eq!(
            (refused, missed),
            (0, 0),
            "(refused alone, rivals missed) of 200"
        );
    }

    #[test]
    fn a_single_socket_shares_its_port_with_no_one() {
        let agent = bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        let at = agent.local_addr().unwrap();
        // Another process of the same user, with every reuse option it can ask for.
        let rival = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
        rival.set_reuse_address(true).unwrap();
        rival.set_reuse_port(true).unwrap();
        let e = rival.bind(&at.into()).expect_err("the port is taken");
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        // And a trap group's port takes no late member with SO_REUSEADDR alone.
        let (group, _) = bind_group("127.0.0.1:0".parse().unwrap(), 1).unwrap();
        let at = group[0].local_addr().unwrap();
        let late = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
        late.set_reuse_address(true).unwrap();
        assert!(late.bind(&at.into()).is_err());
    }

    #[test]
    fn ipv6_loopback() {
        let Ok(rx) = bind_udp("[::1]:0".parse().unwrap()) else {
            crate::testing::skip("no IPv6 loopback here");
            return;
        };
        let tx = UdpSocket::bind("[::1]:0").unwrap();
        tx.send_to(b"v6", rx.local_addr().unwrap()).unwrap();
        let mut batch = RecvBatch::new();
        for _ in 0..100 {
            if let Ok(1) = batch.recv(rx.as_raw_fd()) {
                let (src, data, _) = batch.get(0).unwrap();
                assert_eq!((src, data), (tx.local_addr().unwrap(), &b"v6"[..]));
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        panic!("nothing received on ::1");
    }

    /// Orders leave whole: a batch of small datagrams goes with Don't Fragment and IP ID
    /// 0 (no ID drawn per destination); a batch holding a datagram larger than the path
    /// carries, sent after them from the same socket,, still arrives, fragmented on the
    /// way; the next small batch is whole again. Played in a namespace of the test's own
    /// whose loopback carries 576 bytes; a raw socket there reads each datagram's IP
    /// header as it arrives.
    #[test]
    fn small_batches_leave_whole_and_a_large_datagram_after_them_is_still_fragmented() {
        use crate::testing::netns;
        let tag = format!("tgw{}", std::process::id() % 100_000);
        if let Err(why) = netns::possible(&tag) {
            crate::testing::skip(&format!("no network namespace ({why})"));
            return;
        }
        let _made = netns::Namespaces {
            names: vec![tag.clone()],
            children: Vec::new(),
        };
        netns::ip(&["netns", "add", &tag]);
        netns::ip(&["-n", &tag, "link", "set", "lo", "mtu", "576", "up"]);
        let seen = netns::in_namespace(&tag, || {
            let timeout = Some(std::time::Duration::from_millis(500));
            let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
            rx.set_read_timeout(timeout).unwrap();
            let to = rx.local_addr().unwrap();
            let raw = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::UDP)).unwrap();
            raw.set_read_timeout(timeout).unwrap();
            let raw = UdpSocket::from(raw);
            let tx = bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
            let (mut whole, mut batch) = (Whole::default(), SendBatch::new());
            let mut sent = Vec::new();
            for round in [&[90usize; 100][..], &[90, 1_400, 90], &[90; 5]] {
                for (i, &len) in round.iter().enumerate() {
                    batch.push(to, &vec![i as u8; len]);
                }
                sent.push(whole.flush(&mut batch, tx.as_raw_fd()));
            }
            // Each datagram: its length, and its IP header's Don't Fragment and ID.
            let (mut got, mut buf) = (Vec::new(), [0u8; 2048]);
            while let Ok(n) = rx.recv(&mut buf) {
                let mut header = [0u8; 2048];
                let h = raw.recv(&mut header).expect("the raw socket's copy");
                assert!(
                    h >= 20 && n == h - 20 - 8,
                    "the raw copy of a {n}-byte datagram"
                );
                let df = header[6] & 0x40 != 0;
                let id = u16::from_be_bytes([header[4], header[5]]);
                got.push((n, df, id));
            }
            // A socket first set never to mark Don't Fragment (`net.ipv4.ip_no_pmtu_disc`)
            // is set so again for a batch with a large datagram.
            let dont = bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
            let (fd, mtu) = (dont.as_raw_fd(), libc::IP_MTU_DISCOVER);
            set_int_option(fd, libc::IPPROTO_IP, mtu, libc::IP_PMTUDISC_DONT).unwrap();
            let mut whole = Whole::default();
            let mut modes = Vec::new();
            for len in [90, 1_400, 90] {
                batch.push(to, &vec![0; len]);
                sent.push(whole.flush(&mut batch, fd));
                modes.push(int_option(fd, libc::IPPROTO_IP, mtu).unwrap());
            }
            let want = [libc::IP_PMTUDISC_PROBE, libc::IP_PMTUDISC_DONT];
            assert_eq!(
                modes,
                [want[0], want[1], want[0]],
                "as it was first for the large"
            );
            (sent, got)
        });
        let (sent, got) = seen.join().unwrap();
        let failed: Vec<String> = sent
            .iter()
            .flat_map(|(_, f)| f.iter().map(|(to, e)| format!("{to}: {e}")))
            .collect();
        assert!(failed.is_empty(), "sends refused: {failed:?}");
        assert_eq!(got.len(), 108, "every datagram arrives: {got:?}");
        let (first, rest) = got.split_at(100);
        assert!(
            first.iter().all(|&(n, df, id)| n == 90 && df && id == 0),
            "a batch of orders leaves whole, IP ID 0: {:?}",
            first.iter().find(|&&(_, df, id)| !df || id != 0)
        );
        assert_eq!(
            rest[1].0, 1_400,
            "the large datagram arrives whole, fragmented on the way"
        );
        assert!(
            rest[..3].iter().all(|&(_, _, id)| id != 0),
            "a batch with a large datagram goes the kernel's default way: {rest:?}"
        );
        assert!(
            rest[3..]
                .iter()
                .all(|&(n, df, id)| n == 90 && df && id == 0),
            "the next small batch is whole again: {rest:?}"
        );
    }
}
