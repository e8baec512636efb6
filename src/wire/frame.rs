//! Link, network and transport headers of captured frames, down to the UDP payload (or,
//! for the NUT and apcupsd clients a replay follows, a TCP segment).
//!
//! Link types (tcpdump.org LINKTYPE_ values): Ethernet with 802.1Q / 802.1ad tags,
//! Linux cooked SLL and SLL2, raw IP, BSD loopback (NULL, host byte order, and LOOP,
//! network byte order). IPv4 with options (RFC 791) and IPv6 with extension headers
//! (RFC 8200). IP fragments are counted and never reassembled into traps: a UPS trap
//! fits one datagram, and a fragment is what an attacker would send. An ICMP error that
//! quotes a UDP/162 datagram is ICMP, not a trap.

use core::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A capture's link-layer type (LINKTYPE_ value).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LinkType(pub u32);

impl LinkType {
    /// BSD loopback, address family in host byte order.
    pub const NULL: LinkType = LinkType(0);
    /// Ethernet II.
    pub const ETHERNET: LinkType = LinkType(1);
    /// Raw IPv4 or IPv6 (the common value).
    pub const RAW: LinkType = LinkType(101);
    /// OpenBSD loopback, address family in network byte order.
    pub const LOOP: LinkType = LinkType(108);
    /// Linux cooked capture v1.
    pub const LINUX_SLL: LinkType = LinkType(113);
    /// Raw IPv4.
    pub const IPV4: LinkType = LinkType(228);
    /// Raw IPv6.
    pub const IPV6: LinkType = LinkType(229);
    /// Linux cooked capture v2.
    pub const LINUX_SLL2: LinkType = LinkType(276);
}

/// A UDP datagram found in a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Datagram<'a> {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// The UDP payload.
    pub payload: &'a [u8],
}

/// A TCP segment found in a frame (what a replay reads of NUT and apcupsd clients).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment<'a> {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number of the first payload byte (of the SYN itself on a SYN).
    pub seq: u32,
    /// The flags octet (`tcp::SYN`, `tcp::FIN`, `tcp::RST`, `tcp::ACK`, ...).
    pub flags: u8,
    /// The payload.
    pub payload: &'a [u8],
}

/// TCP flag bits.
pub mod tcp {
    /// No more data from the sender.
    pub const FIN: u8 = 0x01;
    /// Synchronize sequence numbers: a connection opens.
    pub const SYN: u8 = 0x02;
    /// Reset: the connection is gone.
    pub const RST: u8 = 0x04;
    /// Push.
    pub const PSH: u8 = 0x08;
    /// The acknowledgement field is significant.
    pub const ACK: u8 = 0x10;
}

/// Why a frame carries no UDP datagram to decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FrameDrop {
    /// A link type trapgate does not read.
    UnsupportedLink,
    /// A header cut short (by the capture's snap length or a broken frame).
    Truncated,
    /// Not IPv4 or IPv6 (ARP, LLDP, ...).
    NotIp,
    /// IP, but not UDP (ICMP, TCP, ...).
    NotUdp,
    /// An IP fragment.
    Fragment,
    /// An IP header that contradicts itself (version, header length, total length).
    BadIp,
    /// A UDP length field that does not fit the packet.
    BadUdp,
}

impl FrameDrop {
    /// Every reason, in the order of `index()`.
    pub const ALL: [FrameDrop; 7] = [
        FrameDrop::UnsupportedLink,
        FrameDrop::Truncated,
        FrameDrop::NotIp,
        FrameDrop::NotUdp,
        FrameDrop::Fragment,
        FrameDrop::BadIp,
        FrameDrop::BadUdp,
    ];

    /// A dense index for counters.
    pub fn index(self) -> usize {
        self as usize
    }

    /// A stable snake_case name for counters and JSON.
    pub fn reason(self) -> &'static str {
        match self {
            FrameDrop::UnsupportedLink => "link_type_unsupported",
            FrameDrop::Truncated => "frame_truncated",
            FrameDrop::NotIp => "not_ip",
            FrameDrop::NotUdp => "not_udp",
            FrameDrop::Fragment => "ip_fragment",
            FrameDrop::BadIp => "ip_header_invalid",
            FrameDrop::BadUdp => "udp_length_invalid",
        }
    }
}

impl fmt::Display for FrameDrop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

type Result<T> = core::result::Result<T, FrameDrop>;

fn get(data: &[u8], range: core::ops::Range<usize>) -> Result<&[u8]> {
    data.get(range).ok_or(FrameDrop::Truncated)
}

fn be16(data: &[u8], at: usize) -> Result<u16> {
    let b = get(data, at..at + 2)?;
    Ok(u16::from_be_bytes([b[0], b[1]]))
}

/// Finds the UDP datagram in a captured frame.
pub fn udp_datagram(link: LinkType, frame: &[u8]) -> Result<Datagram<'_>> {
    upper::<Udp>(link, frame)
}

/// Finds the TCP segment in a captured frame (`FrameDrop::NotUdp` when it is not TCP).
pub fn tcp_segment(link: LinkType, frame: &[u8]) -> Result<Segment<'_>> {
    upper::<Tcp>(link, frame)
}

/// A transport protocol the IP walk stops at.
trait Upper<'a> {
    /// Its IP protocol number.
    const PROTOCOL: u8;
    /// What it carries.
    type Out;
    /// Reads its header and payload.
    fn read(src: IpAddr, dst: IpAddr, segment: &'a [u8]) -> Result<Self::Out>;
}

struct Udp;
struct Tcp;

impl<'a> Upper<'a> for Udp {
    const PROTOCOL: u8 = 17;
    type Out = Datagram<'a>;
    fn read(src: IpAddr, dst: IpAddr, segment: &'a [u8]) -> Result<Datagram<'a>> {
        udp(src, dst, segment)
    }
}

impl<'a> Upper<'a> for Tcp {
    const PROTOCOL: u8 = 6;
    type Out = Segment<'a>;
    fn read(src: IpAddr, dst: IpAddr, segment: &'a [u8]) -> Result<Segment<'a>> {
        let h = get(segment, 0..20)?;
        let offset = (h[12] >> 4) as usize * 4;
        if offset < 20 {
            return Err(FrameDrop::BadIp);
        }
        Ok(Segment {
            src,
            dst,
            src_port: u16::from_be_bytes([h[0], h[1]]),
            dst_port: u16::from_be_bytes([h[2], h[3]]),
            seq: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
            flags: h[13],
            payload: get(segment, offset..segment.len())?,
        })
    }
}

fn upper<'a, U: Upper<'a>>(link: LinkType, frame: &'a [u8]) -> Result<U::Out> {
    match link {
        LinkType::ETHERNET => ethernet::<U>(frame),
        LinkType::LINUX_SLL => by_ethertype::<U>(be16(frame, 14)?, get(frame, 16..frame.len())?),
        LinkType::LINUX_SLL2 => by_ethertype::<U>(be16(frame, 0)?, get(frame, 20..frame.len())?),
        LinkType::RAW | LinkType(12) | LinkType(14) => raw_ip::<U>(frame),
        LinkType::IPV4 => ipv4::<U>(frame),
        LinkType::IPV6 => ipv6::<U>(frame),
        LinkType::NULL | LinkType::LOOP => {
            let af = get(frame, 0..4)?;
            let le = u32::from_le_bytes([af[0], af[1], af[2], af[3]]);
            let be = u32::from_be_bytes([af[0], af[1], af[2], af[3]]);
            let family = if link == LinkType::LOOP {
                be
            } else if le < 256 {
                le
            } else {
                be
            };
            let rest = &frame[4..];
            match family {
                2 => ipv4::<U>(rest),
                // AF_INET6 differs per BSD: 24 (NetBSD/OpenBSD), 28 (FreeBSD), 30 (macOS).
                10 | 24 | 28 | 30 => ipv6::<U>(rest),
                _ => Err(FrameDrop::NotIp),
            }
        }
        _ => Err(FrameDrop::UnsupportedLink),
    }
}

fn ethernet<'a, U: Upper<'a>>(frame: &'a [u8]) -> Result<U::Out> {
    let mut at = 12;
    let mut ethertype = be16(frame, at)?;
    // 802.1Q, 802.1ad (QinQ) and the old 0x9100: skip each 4-byte tag.
    let mut tags = 0;
    while matches!(ethertype, 0x8100 | 0x88a8 | 0x9100) {
        tags += 1;
        if tags > 8 {
            return Err(FrameDrop::NotIp);
        }
        at += 4;
        ethertype = be16(frame, at)?;
    }
    by_ethertype::<U>(ethertype, get(frame, at + 2..frame.len())?)
}

fn by_ethertype<'a, U: Upper<'a>>(ethertype: u16, rest: &'a [u8]) -> Result<U::Out> {
    match ethertype {
        0x0800 => ipv4::<U>(rest),
        0x86dd => ipv6::<U>(rest),
        _ => Err(FrameDrop::NotIp),
    }
}

fn raw_ip<'a, U: Upper<'a>>(packet: &'a [u8]) -> Result<U::Out> {
    match get(packet, 0..1)?[0] >> 4 {
        4 => ipv4::<U>(packet),
        6 => ipv6::<U>(packet),
        _ => Err(FrameDrop::NotIp),
    }
}

fn ipv4<'a, U: Upper<'a>>(packet: &'a [u8]) -> Result<U::Out> {
    let h = get(packet, 0..20)?;
    if h[0] >> 4 != 4 {
        return Err(FrameDrop::BadIp);
    }
    let ihl = (h[0] & 0x0f) as usize * 4;
    let total = u16::from_be_bytes([h[2], h[3]]) as usize;
    if ihl < 20 || total < ihl {
        return Err(FrameDrop::BadIp);
    }
    let flags_frag = u16::from_be_bytes([h[6], h[7]]);
    if flags_frag & 0x3fff != 0 {
        // More-fragments set, or a non-zero offset.
        return Err(FrameDrop::Fragment);
    }
    if h[9] != U::PROTOCOL {
        return Err(FrameDrop::NotUdp);
    }
    // Trim link-layer padding; a total length past the capture is a cut frame.
    let packet = get(packet, 0..total)?;
    get(packet, 0..ihl)?;
    let src = IpAddr::V4(Ipv4Addr::new(h[12], h[13], h[14], h[15]));
    let dst = IpAddr::V4(Ipv4Addr::new(h[16], h[17], h[18], h[19]));
    U::read(src, dst, &packet[ihl..])
}

fn ipv6<'a, U: Upper<'a>>(packet: &'a [u8]) -> Result<U::Out> {
    let h = get(packet, 0..40)?;
    if h[0] >> 4 != 6 {
        return Err(FrameDrop::BadIp);
    }
    let payload_len = u16::from_be_bytes([h[4], h[5]]) as usize;
    let mut next = h[6];
    let src = IpAddr::V6(Ipv6Addr::from(
        <[u8; 16]>::try_from(&h[8..24]).expect("16 bytes"),
    ));
    let dst = IpAddr::V6(Ipv6Addr::from(
        <[u8; 16]>::try_from(&h[24..40]).expect("16 bytes"),
    ));
    let mut rest = get(packet, 40..40 + payload_len)?;
    // Walk the extension headers (RFC 8200 §4) to the upper layer.
    for _ in 0..16 {
        match next {
            p if p == U::PROTOCOL => return U::read(src, dst, rest),
            // Hop-by-hop, routing, destination options: (len + 1) * 8 octets.
            0 | 43 | 60 => {
                let e = get(rest, 0..2)?;
                let len = (e[1] as usize + 1) * 8;
                next = e[0];
                rest = get(rest, len..rest.len())?;
            }
            // Authentication header: (len + 2) * 4 octets.
            51 => {
                let e = get(rest, 0..2)?;
                let len = (e[1] as usize + 2) * 4;
                next = e[0];
                rest = get(rest, len..rest.len())?;
            }
            44 => {
                let e = get(rest, 0..8)?;
                let offset_m = u16::from_be_bytes([e[2], e[3]]);
                if offset_m & 0xfff9 != 0 {
                    return Err(FrameDrop::Fragment);
                }
                // An atomic fragment (offset 0, no more) is a whole datagram.
                next = e[0];
                rest = &rest[8..];
            }
            _ => return Err(FrameDrop::NotUdp),
        }
    }
    Err(FrameDrop::BadIp)
}

fn udp(src: IpAddr, dst: IpAddr, segment: &[u8]) -> Result<Datagram<'_>> {
    let h = get(segment, 0..8)?;
    let len = u16::from_be_bytes([h[4], h[5]]) as usize;
    if len < 8 {
        return Err(FrameDrop::BadUdp);
    }
    let payload = match segment.get(8..len) {
        Some(p) => p,
        None => return Err(FrameDrop::Truncated),
    };
    Ok(Datagram {
        src,
        dst,
        src_port: u16::from_be_bytes([h[0], h[1]]),
        dst_port: u16::from_be_bytes([h[2], h[3]]),
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first frame of zeek's snmpv1_trap.pcap, minus the SNMP payload.
    fn udp4(payload: &[u8]) -> Vec<u8> {
        let total = 20 + 8 + payload.len();
        let mut p = vec![
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            1,
            0,
            0,
            64,
            17,
            0,
            0,
            127,
            0,
            0,
            1,
            127,
            0,
            0,
            2,
        ];
        let ulen = 8 + payload.len();
        p.extend_from_slice(&[0x9c, 0x40, 0, 162, (ulen >> 8) as u8, ulen as u8, 0, 0]);
        p.extend_from_slice(payload);
        p
    }

    fn eth(ethertype: [u8; 2], ip: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&ethertype);
        f.extend_from_slice(ip);
        f
    }

    #[test]
    fn a_tcp_segment_with_options_gives_its_ports_sequence_flags_and_payload() {
        let payload = b"GET VAR ups ups.status\n";
        // 20 bytes of header and 12 of options (offset 8 words).
        let mut tcp = vec![
            0xc3, 0x50, 0x0d, 0xa5, 0, 0, 0x10, 0, 0, 0, 0, 1, 0x80, 0x18, 0xff, 0xff, 0, 0, 0, 0,
        ];
        tcp.extend_from_slice(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
        tcp.extend_from_slice(payload);
        let total = 20 + tcp.len();
        let mut ip = vec![
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            1,
            0x40,
            0,
            64,
            6,
            0,
            0,
            127,
            0,
            0,
            30,
            127,
            0,
            0,
            1,
        ];
        ip.extend_from_slice(&tcp);
        let s = tcp_segment(LinkType::RAW, &ip).unwrap();
        assert_eq!((s.src_port, s.dst_port), (50000, 3493));
        assert_eq!(s.seq, 0x1000);
        assert_eq!(s.flags, tcp::PSH | tcp::ACK);
        assert_eq!(s.payload, payload);
        assert_eq!(s.src, "127.0.0.30".parse::<IpAddr>().unwrap());
        // The same packet is no UDP datagram, and a UDP one no TCP segment.
        assert_eq!(udp_datagram(LinkType::RAW, &ip), Err(FrameDrop::NotUdp));
        assert_eq!(
            tcp_segment(LinkType::RAW, &udp4(b"x")),
            Err(FrameDrop::NotUdp)
        );
        // A header cut short, and a data offset below 5 words.
        assert_eq!(
            tcp_segment(LinkType::RAW, &ip[..30]),
            Err(FrameDrop::Truncated)
        );
        let mut bad = ip.clone();
        bad[20 + 12] = 0x40;
        assert_eq!(tcp_segment(LinkType::RAW, &bad), Err(FrameDrop::BadIp));
    }

    #[test]
    fn ethernet_ipv4_udp() {
        let f = eth([0x08, 0x00], &udp4(b"snmp"));
        let d = udp_datagram(LinkType::ETHERNET, &f).unwrap();
        assert_eq!(d.src, "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!((d.src_port, d.dst_port), (40000, 162));
        assert_eq!(d.payload, b"snmp");
        // Ethernet pads short frames to 60 bytes: the IP total length trims it.
        let mut padded = f.clone();
        padded.extend_from_slice(&[0; 20]);
        assert_eq!(
            udp_datagram(LinkType::ETHERNET, &padded).unwrap().payload,
            b"snmp"
        );
    }

    #[test]
    fn vlan_tags_are_skipped() {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x81, 0x00, 0x00, 0x0a, 0x81, 0x00, 0x00, 0x14, 0x08, 0x00]);
        f.extend_from_slice(&udp4(b"x"));
        assert_eq!(udp_datagram(LinkType::ETHERNET, &f).unwrap().payload, b"x");
    }

    #[test]
    fn ipv4_options_fragments_and_other_protocols() {
        let mut ip = udp4(b"abc");
        // Grow the header by 4 bytes of options (NOP NOP NOP EOL).
        ip[0] = 0x46;
        let total = ip.len() + 4;
        ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        ip.splice(20..20, [1, 1, 1, 0]);
        assert_eq!(udp_datagram(LinkType::RAW, &ip).unwrap().payload, b"abc");
        let mut frag = udp4(b"abc");
        frag[6] = 0x20; // more fragments
        assert_eq!(udp_datagram(LinkType::RAW, &frag), Err(FrameDrop::Fragment));
        let mut later = udp4(b"abc");
        later[7] = 0x10; // offset 16
        assert_eq!(
            udp_datagram(LinkType::RAW, &later),
            Err(FrameDrop::Fragment)
        );
        let mut icmp = udp4(b"abc");
        icmp[9] = 1;
        assert_eq!(udp_datagram(LinkType::RAW, &icmp), Err(FrameDrop::NotUdp));
        assert_eq!(
            udp_datagram(LinkType::ETHERNET, &eth([0x08, 0x06], &[0; 28])),
            Err(FrameDrop::NotIp)
        );
    }

    #[test]
    fn truncated_and_inconsistent_headers() {
        let ip = udp4(b"abcdef");
        for cut in [0, 10, 19, 25, ip.len() - 1] {
            assert_eq!(
                udp_datagram(LinkType::RAW, &ip[..cut]),
                Err(FrameDrop::Truncated),
                "cut at {cut}"
            );
        }
        let mut bad_udp = udp4(b"abc");
        bad_udp[25] = 4; // UDP length 4 < 8
        assert_eq!(
            udp_datagram(LinkType::RAW, &bad_udp),
            Err(FrameDrop::BadUdp)
        );
        let mut bad_ihl = udp4(b"abc");
        bad_ihl[0] = 0x44;
        assert_eq!(udp_datagram(LinkType::RAW, &bad_ihl), Err(FrameDrop::BadIp));
        assert_eq!(
            udp_datagram(LinkType(147), &ip),
            Err(FrameDrop::UnsupportedLink)
        );
    }

    fn udp6(ext: &[u8], first_next: u8, payload: &[u8]) -> Vec<u8> {
        let ulen = 8 + payload.len();
        let plen = ext.len() + ulen;
        let mut p = vec![0x60, 0, 0, 0, (plen >> 8) as u8, plen as u8, first_next, 64];
        p.extend_from_slice(&[0; 15]);
        p.push(1); // ::1
        p.extend_from_slice(&[0; 15]);
        p.push(1);
        p.extend_from_slice(ext);
        p.extend_from_slice(&[0x04, 0x00, 0x00, 162, (ulen >> 8) as u8, ulen as u8, 0, 0]);
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn ipv6_with_extension_headers() {
        let plain = udp6(&[], 17, b"v6");
        let d = udp_datagram(LinkType::RAW, &plain).unwrap();
        assert_eq!(d.src, "::1".parse::<IpAddr>().unwrap());
        assert_eq!(d.payload, b"v6");
        // Hop-by-hop (8 bytes) then destination options (8 bytes) then UDP.
        let ext = [60, 0, 1, 4, 0, 0, 0, 0, 17, 0, 1, 4, 0, 0, 0, 0];
        let f = udp6(&ext, 0, b"v6");
        assert_eq!(udp_datagram(LinkType::IPV6, &f).unwrap().payload, b"v6");
        let frag = [17, 0, 0x00, 0x01, 0, 0, 0, 1];
        assert_eq!(
            udp_datagram(LinkType::RAW, &udp6(&frag, 44, b"v6")),
            Err(FrameDrop::Fragment)
        );
        let atomic = [17, 0, 0x00, 0x00, 0, 0, 0, 1];
        assert_eq!(
            udp_datagram(LinkType::RAW, &udp6(&atomic, 44, b"v6"))
                .unwrap()
                .payload,
            b"v6"
        );
    }

    #[test]
    fn cooked_and_loopback_links() {
        let ip = udp4(b"s");
        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&[0x08, 0x00]);
        sll.extend_from_slice(&ip);
        assert_eq!(
            udp_datagram(LinkType::LINUX_SLL, &sll).unwrap().payload,
            b"s"
        );
        let mut sll2 = vec![0x08, 0x00];
        sll2.extend_from_slice(&[0u8; 18]);
        sll2.extend_from_slice(&ip);
        assert_eq!(
            udp_datagram(LinkType::LINUX_SLL2, &sll2).unwrap().payload,
            b"s"
        );
        let mut null = vec![2, 0, 0, 0];
        null.extend_from_slice(&ip);
        assert_eq!(udp_datagram(LinkType::NULL, &null).unwrap().payload, b"s");
        let mut null_be = vec![0, 0, 0, 2];
        null_be.extend_from_slice(&ip);
        assert_eq!(
            udp_datagram(LinkType::NULL, &null_be).unwrap().payload,
            b"s"
        );
        let mut lo6 = vec![0, 0, 0, 30];
        lo6.extend_from_slice(&udp6(&[], 17, b"m"));
        assert_eq!(udp_datagram(LinkType::LOOP, &lo6).unwrap().payload, b"m");
    }
}
