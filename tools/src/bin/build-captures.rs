//! Writes the captures in `captures/`: the seed's Wireshark trace, rebuilt frame for
//! frame, and captures that cover every built-in vendor table, v2c traps and informs,
//! pcapng, VLAN, SLL/SLL2, IPv6, loopback links, and a set of malformed packets.
//!
//! Run from the repository root: `cargo run -p trapgate-tools --bin build-captures`.
//! The output is deterministic; `tests/captures.rs` replays each file against its
//! golden event log. Addresses are the seed's (192.168.61.x) or documentation ranges;
//! they live only inside these files.

use std::fs::File;
use std::io::BufWriter;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::time::Duration;

use pcap_file::DataLink;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use trapgate::wire::encode;
use trapgate::wire::oid::oid;
use trapgate::wire::{Message, OidBuf, Pdu, PduType, RequestPdu, TrapV1, Value, VarBind, Version};

// ---------------------------------------------------------------------------------
// SNMP messages

/// An owned varbind value, turned into a borrowed `Value` at encoding time.
#[derive(Clone)]
enum V {
    Int(i64),
    Str(String),
    Oid(&'static str),
    Ticks(u32),
    Gauge(u32),
    Null,
}

fn s(text: &str) -> V {
    V::Str(text.to_string())
}

enum P {
    TrapV1 {
        enterprise: &'static str,
        agent: [u8; 4],
        generic: i64,
        specific: i64,
        uptime: u32,
    },
    Req {
        kind: PduType,
        id: i32,
    },
    /// A get-response with an error-status and -index.
    Error {
        id: i32,
        status: i32,
        index: i32,
    },
}

fn snmp(version: Version, community: &str, pdu: P, vbs: &[(&str, V)]) -> Vec<u8> {
    let names: Vec<OidBuf> = vbs.iter().map(|(o, _)| oid(o)).collect();
    let oid_values: Vec<Option<OidBuf>> = vbs
        .iter()
        .map(|(_, v)| match v {
            V::Oid(o) => Some(oid(o)),
            _ => None,
        })
        .collect();
    let list: Vec<VarBind<'_>> = vbs
        .iter()
        .enumerate()
        .map(|(i, (_, v))| VarBind {
            name: names[i].as_oid(),
            value: match v {
                V::Int(n) => Value::Integer(*n),
                V::Str(t) => Value::OctetString(t.as_bytes()),
                V::Oid(_) => Value::ObjectId(oid_values[i].as_ref().expect("set above").as_oid()),
                V::Ticks(t) => Value::TimeTicks(*t),
                V::Gauge(g) => Value::Gauge32(*g),
                V::Null => Value::Null,
            },
        })
        .collect();
    let ent;
    let pdu = match pdu {
        P::TrapV1 {
            enterprise,
            agent,
            generic,
            specific,
            uptime,
        } => {
            ent = oid(enterprise);
            Pdu::TrapV1(TrapV1 {
                enterprise: ent.as_oid(),
                agent_addr: agent,
                generic_trap: generic,
                specific_trap: specific,
                time_stamp: uptime,
                varbinds: &list,
            })
        }
        P::Req { kind, id } => Pdu::Request(RequestPdu {
            kind,
            request_id: id,
            error_status: 0,
            error_index: 0,
            varbinds: &list,
        }),
        P::Error { id, status, index } => Pdu::Request(RequestPdu {
            kind: PduType::RESPONSE,
            request_id: id,
            error_status: status,
            error_index: index,
            varbinds: &list,
        }),
    };
    encode::to_vec(&Message {
        version,
        community: community.as_bytes(),
        pdu,
        v3: None,
    })
}

fn v1_trap(
    community: &str,
    enterprise: &'static str,
    agent: [u8; 4],
    specific: i64,
    uptime: u32,
    vbs: &[(&str, V)],
) -> Vec<u8> {
    snmp(
        Version::V1,
        community,
        P::TrapV1 {
            enterprise,
            agent,
            generic: 6,
            specific,
            uptime,
        },
        vbs,
    )
}

/// A v2c notification: sysUpTime.0, snmpTrapOID.0, then `vbs`.
fn v2_notification(
    kind: PduType,
    community: &str,
    id: i32,
    uptime: u32,
    trap: &'static str,
    vbs: &[(&str, V)],
) -> Vec<u8> {
    let mut all = vec![
        ("1.3.6.1.2.1.1.3.0", V::Ticks(uptime)),
        ("1.3.6.1.6.3.1.1.4.1.0", V::Oid(trap)),
    ];
    all.extend(vbs.iter().cloned());
    snmp(Version::V2c, community, P::Req { kind, id }, &all)
}

fn v2_trap(
    community: &str,
    id: i32,
    uptime: u32,
    trap: &'static str,
    vbs: &[(&str, V)],
) -> Vec<u8> {
    v2_notification(PduType::SNMPV2_TRAP, community, id, uptime, trap, vbs)
}

// ---------------------------------------------------------------------------------
// Frames

fn checksum(chunks: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    let mut odd: Option<u8> = None;
    for chunk in chunks {
        for &b in chunk.iter() {
            match odd.take() {
                None => odd = Some(b),
                Some(hi) => sum += u16::from_be_bytes([hi, b]) as u32,
            }
        }
    }
    if let Some(hi) = odd {
        sum += u16::from_be_bytes([hi, 0]) as u32;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn udp_header(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let len = (8 + payload.len()) as u16;
    let mut u = Vec::with_capacity(len as usize);
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&len.to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

struct Ip4 {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    id: u16,
    options: Vec<u8>,
    flags_frag: u16,
    protocol: u8,
}

fn ip4(src: &str, dst: &str, id: u16) -> Ip4 {
    Ip4 {
        src: src.parse().expect("address"),
        dst: dst.parse().expect("address"),
        id,
        options: Vec::new(),
        flags_frag: 0x4000, // don't fragment
        protocol: 17,
    }
}

impl Ip4 {
    fn packet(&self, transport: &[u8]) -> Vec<u8> {
        let ihl = 20 + self.options.len();
        let total = (ihl + transport.len()) as u16;
        let mut h = vec![(0x40 | (ihl / 4)) as u8, 0];
        h.extend_from_slice(&total.to_be_bytes());
        h.extend_from_slice(&self.id.to_be_bytes());
        h.extend_from_slice(&self.flags_frag.to_be_bytes());
        h.extend_from_slice(&[64, self.protocol, 0, 0]);
        h.extend_from_slice(&self.src.octets());
        h.extend_from_slice(&self.dst.octets());
        h.extend_from_slice(&self.options);
        let c = checksum(&[&h]);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h.extend_from_slice(transport);
        h
    }

    fn udp(&self, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut u = udp_header(sport, dport, payload);
        let len = (u.len() as u16).to_be_bytes();
        let pseudo = [&self.src.octets()[..], &self.dst.octets(), &[0, 17], &len];
        let c = checksum(&[pseudo[0], pseudo[1], pseudo[2], pseudo[3], &u]);
        u[6..8].copy_from_slice(&if c == 0 { 0xffff } else { c }.to_be_bytes());
        self.packet(&u)
    }
}

/// IPv6 + optional hop-by-hop options header + UDP.
fn ip6_udp(
    src: &str,
    dst: &str,
    hop_by_hop: bool,
    sport: u16,
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    let src: Ipv6Addr = src.parse().expect("address");
    let dst: Ipv6Addr = dst.parse().expect("address");
    let mut u = udp_header(sport, dport, payload);
    let ulen = (u.len() as u32).to_be_bytes();
    let c = checksum(&[&src.octets(), &dst.octets(), &ulen, &[0, 0, 0, 17], &u]);
    u[6..8].copy_from_slice(&if c == 0 { 0xffff } else { c }.to_be_bytes());
    let ext: Vec<u8> = if hop_by_hop {
        // Next header UDP, length 0 (8 octets): a PadN option filling the rest.
        vec![17, 0, 1, 4, 0, 0, 0, 0]
    } else {
        Vec::new()
    };
    let plen = (ext.len() + u.len()) as u16;
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&plen.to_be_bytes());
    p.push(if hop_by_hop { 0 } else { 17 });
    p.push(64);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&ext);
    p.extend_from_slice(&u);
    p
}

const MAC_UPS: [u8; 6] = [0x00, 0xc0, 0xb7, 0x3d, 0x61, 0xfa]; // APC OUI
const MAC_NVR_244: [u8; 6] = [0x44, 0x19, 0xb6, 0x3d, 0x61, 0xf4]; // Hikvision OUI
const MAC_NVR_251: [u8; 6] = [0x44, 0x19, 0xb6, 0x3d, 0x61, 0xfb];
const MAC_GW: [u8; 6] = [0x02, 0x00, 0x5e, 0x00, 0x00, 0x01];

fn ethernet(dst: [u8; 6], src: [u8; 6], vlans: &[u16], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(18 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    for v in vlans {
        f.extend_from_slice(&[0x81, 0x00]);
        f.extend_from_slice(&v.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn eth4(dst: [u8; 6], src: [u8; 6], ip: &[u8]) -> Vec<u8> {
    ethernet(dst, src, &[], 0x0800, ip)
}

/// Linux cooked v1: packet type 0 (to us), ARPHRD_ETHER, the sender's MAC.
fn sll(src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0, 0, 0, 1, 0, 6];
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Linux cooked v2.
fn sll2(src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 0, 0, 2, 0, 1, 0, 6]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

// ---------------------------------------------------------------------------------
// Files

/// 2019-03-07T08:00:00Z, the day of the seed's NVR firmware (V4.1.70 190307).
const T0: u64 = 1_551_945_600_000_000_000;

fn at(secs: f64) -> u64 {
    T0 + (secs * 1e6).round() as u64 * 1000
}

fn write_pcap(path: &Path, link: DataLink, nanos: bool, frames: &[(u64, Vec<u8>)]) {
    let header = PcapHeader {
        datalink: link,
        ts_resolution: if nanos {
            pcap_file::TsResolution::NanoSecond
        } else {
            pcap_file::TsResolution::MicroSecond
        },
        ..Default::default()
    };
    let file = BufWriter::new(File::create(path).expect("create capture"));
    let mut w = PcapWriter::with_header(file, header).expect("pcap header");
    for (ns, data) in frames {
        w.write_packet(&PcapPacket::new(
            Duration::from_nanos(*ns),
            data.len() as u32,
            data,
        ))
        .expect("write packet");
    }
}

/// pcapng with one interface per link type; timestamps at nanosecond resolution.
fn write_pcapng(path: &Path, links: &[DataLink], frames: &[(u32, u64, Vec<u8>)]) {
    let file = BufWriter::new(File::create(path).expect("create capture"));
    let mut w = PcapNgWriter::new(file).expect("pcapng header");
    for &link in links {
        w.write_pcapng_block(InterfaceDescriptionBlock {
            linktype: link,
            snaplen: 0xffff,
            options: vec![InterfaceDescriptionOption::IfTsResol(9)],
        })
        .expect("interface");
    }
    for (interface, ns, data) in frames {
        w.write_pcapng_block(EnhancedPacketBlock {
            interface_id: *interface,
            // pcap-file writes the duration's nanoseconds as the raw timestamp, which
            // if_tsresol 9 declares to be nanoseconds.
            timestamp: Duration::from_nanos(*ns),
            original_len: data.len() as u32,
            data: data.as_slice().into(),
            options: vec![],
        })
        .expect("packet");
    }
}

// ---------------------------------------------------------------------------------
// The captures

const APC: &str = "1.3.6.1.4.1.318";
const MTRAPARGS_STRING_0: &str = "1.3.6.1.4.1.318.2.3.3.0";
const UPS: &str = "192.168.61.250";

/// The seed's Wireshark trace (DESIGN.md), frame for frame: addresses, times, sizes.
fn seed_trace(dir: &Path) {
    let ups = [192, 168, 61, 250];
    let low_battery = v1_trap(
        "public",
        APC,
        ups,
        7,
        8_000_000,
        &[(
            MTRAPARGS_STRING_0,
            s("UPS: Low battery. A shutdown is imminent."),
        )],
    );
    assert_eq!(
        low_battery.len(),
        101,
        "the seed's trap message is 101 bytes"
    );
    let charge = "1.3.6.1.2.1.33.1.2.4.0";
    let get = |id| {
        snmp(
            Version::V1,
            "public",
            P::Req {
                kind: PduType::GET_REQUEST,
                id,
            },
            &[(charge, V::Null)],
        )
    };
    let response = |id, pct| {
        snmp(
            Version::V1,
            "public",
            P::Req {
                kind: PduType::RESPONSE,
                id,
            },
            &[(charge, V::Int(pct))],
        )
    };
    let ack = snmp(
        Version::V1,
        "public",
        P::TrapV1 {
            enterprise: "1.3.6.1.4.1.50001",
            agent: [192, 168, 61, 251],
            generic: 6,
            specific: 200,
            uptime: 9_000_000,
        },
        &[],
    );
    assert_eq!(
        (get(4660).len(), response(4660, 18).len(), ack.len()),
        (43, 44, 46)
    );
    let ups_to = |dst: &str, id, msg: &[u8]| ip4(UPS, dst, id).udp(161, 162, msg);
    let nvr = |id, dport, msg: &[u8]| ip4("192.168.61.251", UPS, id).udp(50123, dport, msg);
    let nvr_ack = |id, msg: &[u8]| ip4("192.168.61.251", UPS, id).udp(50124, 162, msg);
    let reply = |id, msg: &[u8]| ip4(UPS, "192.168.61.251", id).udp(161, 50123, msg);
    // An ARP request opens the capture, as the seed's trace had frames before its SNMP.
    let mut arp = vec![0, 1, 8, 0, 6, 4, 0, 1];
    arp.extend_from_slice(&MAC_NVR_244);
    arp.extend_from_slice(&[192, 168, 61, 244, 0, 0, 0, 0, 0, 0, 192, 168, 61, 250]);
    let frames = vec![
        (at(0.0), ethernet([0xff; 6], MAC_NVR_244, &[], 0x0806, &arp)),
        (
            at(1233.504849),
            eth4(
                MAC_NVR_244,
                MAC_UPS,
                &ups_to("192.168.61.244", 0x0101, &low_battery),
            ),
        ),
        (
            at(1233.519644),
            eth4(
                MAC_NVR_251,
                MAC_UPS,
                &ups_to("192.168.61.251", 0x0102, &low_battery),
            ),
        ),
        (
            at(1278.475628),
            eth4(MAC_UPS, MAC_NVR_251, &nvr(0x2001, 161, &get(4660))),
        ),
        (
            at(1278.509070),
            eth4(MAC_NVR_251, MAC_UPS, &reply(0x0103, &response(4660, 18))),
        ),
        (
            at(1279.203829),
            eth4(MAC_UPS, MAC_NVR_251, &nvr(0x2002, 161, &get(4661))),
        ),
        (
            at(1279.214345),
            eth4(MAC_NVR_251, MAC_UPS, &reply(0x0104, &response(4661, 18))),
        ),
        (
            at(1282.318913),
            eth4(MAC_UPS, MAC_NVR_251, &nvr_ack(0x2003, &ack)),
        ),
        (
            at(1283.263812),
            eth4(MAC_UPS, MAC_NVR_251, &nvr(0x2004, 161, &get(4662))),
        ),
        (
            at(1283.273752),
            eth4(MAC_NVR_251, MAC_UPS, &reply(0x0105, &response(4662, 17))),
        ),
        (
            at(1287.313588),
            eth4(MAC_UPS, MAC_NVR_251, &nvr(0x2005, 161, &get(4663))),
        ),
    ];
    let sizes: Vec<usize> = frames[1..].iter().map(|(_, f)| f.len()).collect();
    assert_eq!(
        sizes,
        [143, 143, 85, 86, 85, 86, 88, 85, 86, 85],
        "DESIGN.md frame sizes"
    );
    write_pcap(
        &dir.join("seed-trace.pcap"),
        DataLink::ETHERNET,
        false,
        &frames,
    );
}

/// APC PowerNet-MIB v1 traps through a whole outage; mtrapargsString with and without `.0`.
fn apc_outage(dir: &Path) {
    let ups = [192, 168, 61, 250];
    let text_0 = MTRAPARGS_STRING_0;
    let text = "1.3.6.1.4.1.318.2.3.3";
    let traps: [(f64, i64, &str, &str); 7] = [
        (
            10.0,
            5,
            text_0,
            "UPS: On battery power in response to an input power problem.",
        ),
        (
            70.0,
            5,
            text,
            "UPS: On battery power in response to an input power problem.",
        ),
        (
            300.0,
            7,
            text_0,
            "UPS: The battery power is too low to continue to support the load.",
        ),
        (
            305.0,
            39,
            text_0,
            "UPS: A graceful shutdown has been initiated.",
        ),
        (900.0, 9, text_0, "UPS: Utility power has been restored."),
        (
            960.0,
            11,
            text,
            "UPS: The UPS has returned from a low battery condition.",
        ),
        (
            1000.0,
            1,
            text_0,
            "UPS: Communication to the UPS has been lost.",
        ),
    ];
    let frames: Vec<(u64, Vec<u8>)> = traps
        .iter()
        .enumerate()
        .map(|(i, &(t, specific, varbind, msg))| {
            let trap = v1_trap(
                "public",
                APC,
                ups,
                specific,
                100_000 + (t * 100.0) as u32,
                &[(varbind, s(msg))],
            );
            (
                at(t),
                eth4(
                    MAC_GW,
                    MAC_UPS,
                    &ip4(UPS, "192.168.61.10", 0x300 + i as u16).udp(161, 162, &trap),
                ),
            )
        })
        .collect();
    write_pcap(
        &dir.join("apc-outage.pcap"),
        DataLink::ETHERNET,
        false,
        &frames,
    );
}

/// RFC 1628 UPS-MIB as v2c traps and an inform, in pcapng: native and proxied forms,
/// and the alarm table (entry added / removed) carrying the event in upsAlarmDescr.
fn ups_mib_v2c(dir: &Path) {
    let src = "192.168.61.240";
    let descr = |id: u32| -> String { format!("1.3.6.1.2.1.33.1.6.2.1.2.{id}") };
    let d7 = descr(7);
    let d8 = descr(8);
    let alarm_id_7 = "1.3.6.1.2.1.33.1.6.2.1.1.7";
    let on_battery = v2_trap(
        "site-ups",
        101,
        5000,
        "1.3.6.1.2.1.33.2.1",
        &[
            ("1.3.6.1.2.1.33.1.2.3.0", V::Int(42)),
            ("1.3.6.1.2.1.33.1.2.2.0", V::Int(3)),
            ("1.3.6.1.2.1.33.1.9.7.0", V::Int(2)),
        ],
    );
    // The same notification a minute later, as RFC 1628 repeats it, via a v1->v2 proxy.
    let on_battery_proxied = v2_trap(
        "site-ups",
        102,
        11000,
        "1.3.6.1.2.1.33.2.0.1",
        &[
            ("1.3.6.1.2.1.33.1.2.3.0", V::Int(41)),
            ("1.3.6.1.2.1.33.1.2.2.0", V::Int(63)),
            ("1.3.6.1.2.1.33.1.9.7.0", V::Int(2)),
        ],
    );
    let low_added = v2_notification(
        PduType::INFORM_REQUEST,
        "site-ups",
        103,
        30000,
        "1.3.6.1.2.1.33.2.3",
        &[
            (alarm_id_7, V::Int(7)),
            (&d7, V::Oid("1.3.6.1.2.1.33.1.6.3.3")),
        ],
    );
    let inform_ack = snmp(
        Version::V2c,
        "site-ups",
        P::Req {
            kind: PduType::RESPONSE,
            id: 103,
        },
        &[
            ("1.3.6.1.2.1.1.3.0", V::Ticks(30000)),
            ("1.3.6.1.6.3.1.1.4.1.0", V::Oid("1.3.6.1.2.1.33.2.3")),
            (alarm_id_7, V::Int(7)),
            (&d7, V::Oid("1.3.6.1.2.1.33.1.6.3.3")),
        ],
    );
    let shutdown = v2_trap(
        "site-ups",
        104,
        31000,
        "1.3.6.1.2.1.33.2.3",
        &[
            ("1.3.6.1.2.1.33.1.6.2.1.1.8", V::Int(8)),
            (&d8, V::Oid("1.3.6.1.2.1.33.1.6.3.22")),
        ],
    );
    let on_battery_removed = v2_trap(
        "site-ups",
        105,
        60000,
        "1.3.6.1.2.1.33.2.4",
        &[
            ("1.3.6.1.2.1.33.1.6.2.1.1.2", V::Int(2)),
            (
                "1.3.6.1.2.1.33.1.6.2.1.2.2",
                V::Oid("1.3.6.1.2.1.33.1.6.3.2"),
            ),
        ],
    );
    let low_removed = v2_trap(
        "site-ups",
        106,
        61000,
        "1.3.6.1.2.1.33.2.4",
        &[
            (alarm_id_7, V::Int(7)),
            (&d7, V::Oid("1.3.6.1.2.1.33.1.6.3.3")),
        ],
    );
    let test_done = v2_trap(
        "site-ups",
        107,
        70000,
        "1.3.6.1.2.1.33.2.2",
        &[("1.3.6.1.2.1.33.1.7.1.0", V::Oid("1.3.6.1.2.1.33.1.7.7.2"))],
    );
    let up = |id, m: &[u8]| {
        eth4(
            MAC_GW,
            MAC_UPS,
            &ip4(src, "192.168.61.10", id).udp(49152, 162, m),
        )
    };
    let frames = vec![
        (0, at(50.0), up(1, &on_battery)),
        (0, at(110.0), up(2, &on_battery_proxied)),
        (0, at(300.0), up(3, &low_added)),
        (
            0,
            at(300.000412),
            eth4(
                MAC_UPS,
                MAC_GW,
                &ip4("192.168.61.10", src, 9).udp(162, 49152, &inform_ack),
            ),
        ),
        (0, at(310.0), up(4, &shutdown)),
        (0, at(600.0), up(5, &on_battery_removed)),
        (0, at(610.0), up(6, &low_removed)),
        (0, at(700.0), up(7, &test_done)),
    ];
    write_pcapng(
        &dir.join("ups-mib-v2c.pcapng"),
        &[DataLink::ETHERNET],
        &frames,
    );
}

/// Eaton XUPS-MIB and MGE v1 traps, on an 802.1Q VLAN (and one QinQ frame).
fn eaton_vlan(dir: &Path) {
    let xups = "1.3.6.1.4.1.534.1.11.4.1";
    let mge = "1.3.6.1.4.1.705.1.11";
    let ups = [192, 168, 61, 230];
    let xmsg = "1.3.6.1.4.1.534.1.11.3.0";
    let alarm = |n: u32, text: &str| -> Vec<(String, V)> {
        vec![
            (format!("1.3.6.1.4.1.534.1.7.2.1.1.{n}"), V::Int(n as i64)),
            (
                format!("1.3.6.1.4.1.534.1.7.2.1.2.{n}"),
                V::Oid(match n {
                    3 => "1.3.6.1.4.1.534.1.7.3",
                    4 => "1.3.6.1.4.1.534.1.7.4",
                    _ => "1.3.6.1.4.1.534.1.7.5",
                }),
            ),
            (xmsg.to_string(), s(text)),
        ]
    };
    let trap = |ent: &'static str, n: i64, vbs: Vec<(String, V)>| {
        let borrowed: Vec<(&str, V)> = vbs.iter().map(|(o, v)| (o.as_str(), v.clone())).collect();
        v1_trap("public", ent, ups, n, 4242 + n as u32, &borrowed)
    };
    let msgs = [
        trap(xups, 3, alarm(3, "UPS on battery")),
        trap(xups, 4, alarm(4, "Battery low")),
        trap(xups, 27, vec![(xmsg.into(), s("Shutdown pending"))]),
        trap(xups, 5, alarm(5, "Utility power restored")),
        trap(
            mge,
            11,
            vec![
                ("1.3.6.1.4.1.705.1.5.1.0".into(), V::Int(900)),
                ("1.3.6.1.4.1.705.1.5.2.0".into(), V::Int(80)),
            ],
        ),
        trap(
            mge,
            5,
            vec![
                ("1.3.6.1.4.1.705.1.5.1.0".into(), V::Int(120)),
                ("1.3.6.1.4.1.705.1.5.2.0".into(), V::Int(12)),
            ],
        ),
        trap(
            mge,
            12,
            vec![
                ("1.3.6.1.4.1.705.1.5.1.0".into(), V::Int(130)),
                ("1.3.6.1.4.1.705.1.5.2.0".into(), V::Int(13)),
            ],
        ),
    ];
    let frames: Vec<(u64, Vec<u8>)> = msgs
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let ip = ip4("192.168.61.230", "192.168.61.10", 0x500 + i as u16).udp(161, 162, m);
            let vlans: &[u16] = if i == 6 { &[100, 61] } else { &[61] };
            (
                at(20.0 + i as f64 * 30.0),
                ethernet(MAC_GW, MAC_UPS, vlans, 0x0800, &ip),
            )
        })
        .collect();
    write_pcap(
        &dir.join("eaton-mge-vlan.pcap"),
        DataLink::ETHERNET,
        false,
        &frames,
    );
}

/// CyberPower CPS-MIB traps (v1 and v2c, mtrapinfoString without `.0`) on Linux SLL.
fn cyberpower_sll(dir: &Path) {
    let cps = "1.3.6.1.4.1.3808";
    let ups = [192, 168, 61, 220];
    let info = "1.3.6.1.4.1.3808.2.2.3";
    let frames: Vec<(u64, Vec<u8>)> = [
        v1_trap(
            "public",
            cps,
            ups,
            5,
            100,
            &[(info, s("Utility power failed, transfer to backup mode."))],
        ),
        v2_trap(
            "public",
            7001,
            200,
            "1.3.6.1.4.1.3808.0.35",
            &[(
                info,
                s("The UPS remaining runtime is lower than threshold."),
            )],
        ),
        v1_trap(
            "public",
            cps,
            ups,
            29,
            300,
            &[(info, s("The UPS has signaled clients to shutdown."))],
        ),
        v2_trap(
            "public",
            7002,
            400,
            "1.3.6.1.4.1.3808.0.9",
            &[(info, s("Utility power restored, return from backup mode."))],
        ),
        v1_trap(
            "public",
            cps,
            ups,
            26,
            500,
            &[(info, s("The UPS has been turned on."))],
        ),
    ]
    .iter()
    .enumerate()
    .map(|(i, m)| {
        let ip = ip4("192.168.61.220", "192.168.61.10", 0x700 + i as u16).udp(161, 162, m);
        (at(5.0 + i as f64 * 60.0), sll(MAC_UPS, 0x0800, &ip))
    })
    .collect();
    write_pcap(
        &dir.join("cyberpower-sll.pcap"),
        DataLink::LINUX_SLL,
        true,
        &frames,
    );
}

/// Liebert, Socomec, Megatec and Delta over IPv6 (with a hop-by-hop header), SLL2 link.
fn others_ipv6(dir: &Path) {
    let vertiv = "2001:db8:61::50";
    let gw = "2001:db8:61::10";
    let lgp_descr = "1.3.6.1.4.1.476.1.42.3.2.3.1.2.4";
    let msgs = [
        v2_trap(
            "public",
            1,
            100,
            "1.3.6.1.4.1.476.1.42.3.3.0.1",
            &[
                ("1.3.6.1.4.1.476.1.42.3.2.3.1.1.4", V::Gauge(4)),
                (lgp_descr, V::Oid("1.3.6.1.4.1.476.1.42.3.2.7.1.4168")),
            ],
        ),
        v2_trap("public", 2, 200, "1.3.6.1.4.1.476.1.42.3.3.0.3", &[]),
        v2_trap(
            "public",
            3,
            300,
            "1.3.6.1.4.1.476.1.42.3.3.0.2",
            &[
                ("1.3.6.1.4.1.476.1.42.3.2.3.1.1.4", V::Gauge(4)),
                (lgp_descr, V::Oid("1.3.6.1.4.1.476.1.42.3.2.7.1.4168")),
            ],
        ),
        v1_trap(
            "public",
            "1.3.6.1.4.1.4555.1.1.1.2",
            [192, 168, 61, 210],
            7,
            400,
            &[("1.3.6.1.4.1.4555.1.1.1.1.10.50", s("On battery"))],
        ),
        v2_trap("public", 4, 500, "1.3.6.1.4.1.4555.1.1.7.2.0.10", &[]),
        v1_trap(
            "public",
            "1.3.6.1.4.1.935",
            [192, 168, 61, 211],
            13,
            600,
            &[],
        ),
        v1_trap(
            "public",
            "1.3.6.1.4.1.2254.2.4.20",
            [192, 168, 61, 212],
            45,
            700,
            &[],
        ),
        v2_trap("public", 5, 800, "1.3.6.1.4.1.2254.2.4.20.0.4", &[]),
    ];
    let frames: Vec<(u32, u64, Vec<u8>)> = msgs
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let ip = ip6_udp(vertiv, gw, i % 2 == 0, 161, 162, m);
            (0, at(1.0 + i as f64), sll2(MAC_UPS, 0x86dd, &ip))
        })
        .collect();
    write_pcapng(
        &dir.join("others-ipv6-sll2.pcapng"),
        &[DataLink::LINUX_SLL2],
        &frames,
    );
}

/// Two interfaces in one pcapng: BSD loopback (NULL) and raw IP, as a gateway that
/// captures its own loopback tests would see them.
fn loopback_raw(dir: &Path) {
    let trap = v1_trap(
        "public",
        APC,
        [127, 0, 0, 1],
        5,
        1,
        &[(
            MTRAPARGS_STRING_0,
            s("UPS: On battery power in response to an input power problem."),
        )],
    );
    let ack = v1_trap("public", "1.3.6.1.4.1.50001", [127, 0, 0, 1], 1, 2, &[]);
    let mut null = vec![2, 0, 0, 0];
    null.extend_from_slice(&ip4("127.0.0.1", "127.0.0.1", 1).udp(40000, 162, &trap));
    let raw4 = ip4("127.0.0.1", "127.0.0.1", 2).udp(40001, 162, &ack);
    let raw6 = ip6_udp("::1", "::1", false, 40002, 162, &trap);
    let frames = vec![(0, at(1.0), null), (1, at(2.0), raw4), (1, at(3.0), raw6)];
    write_pcapng(
        &dir.join("loopback-raw.pcapng"),
        &[DataLink::NULL, DataLink::RAW],
        &frames,
    );
}

/// Packets that must be counted, never taken for traps.
fn malformed(dir: &Path) {
    let good = v1_trap(
        "public",
        APC,
        [192, 168, 61, 250],
        7,
        1,
        &[(MTRAPARGS_STRING_0, s("UPS: battery low"))],
    );
    let mut cases: Vec<Vec<u8>> = Vec::new();
    // 1. Truncated: the last 10 bytes are missing.
    cases.push(good[..good.len() - 10].to_vec());
    // 2. Overlong: the outer length claims more than the datagram holds.
    let mut overlong = good.clone();
    overlong[1] = 0x7f;
    cases.push(overlong);
    // 3. A length field of five octets.
    let mut long_len = vec![0x30, 0x85, 0, 0, 0, 0, good.len() as u8 - 2];
    long_len.extend_from_slice(&good[2..]);
    cases.push(long_len);
    // 4. Indefinite length.
    let mut indefinite = good.clone();
    indefinite[1] = 0x80;
    cases.push(indefinite);
    // 5. Bad OID: the enterprise's last sub-identifier has its continuation bit set.
    let mut bad_oid = good.clone();
    let ent_at = 2 + 3 + 8 + 2 + 2; // 30 len, version, community, a4 len, 06 len
    bad_oid[ent_at + 6] |= 0x80;
    cases.push(bad_oid);
    // 6. Bad OID: 0x80 padding in the varbind name (non-minimal sub-identifier).
    let padded = {
        let mut m = good.clone();
        let pos = m
            .windows(3)
            .position(|w| w == [0x82, 0x3e, 0x02])
            .map(|p| p + 2);
        let pos = pos.expect("mtrapargs name");
        m[pos] = 0x80; // 318.<0x80 0x03>: padding where 2 was
        m
    };
    cases.push(padded);
    // 7. Wrong tag: the community is an INTEGER.
    let mut wrong = good.clone();
    wrong[5] = 0x02;
    cases.push(wrong);
    // 8. Wrong tag: the PDU is a universal SEQUENCE.
    let mut wrong_pdu = good.clone();
    wrong_pdu[13] = 0x30;
    cases.push(wrong_pdu);
    // 9. Unknown PDU type [9].
    let mut unknown = good.clone();
    unknown[13] = 0xa9;
    cases.push(unknown);
    // 10. Version 2 (v2u/v2*, never deployed).
    let mut v2u = good.clone();
    v2u[4] = 2;
    cases.push(v2u);
    // 11. Trailing garbage after a whole message.
    let mut trailing = good.clone();
    trailing.extend_from_slice(b"\0\0garbage");
    cases.push(trailing);
    // 12. An SNMPv3 message header cut short, its msgFlags empty (never parsed as
    // v1/v2c: counted as bad_msg_flags).
    cases.push(vec![
        0x30, 0x0e, 0x02, 0x01, 0x03, 0x30, 0x09, 0x02, 0x01, 0x01, 0x02, 0x02, 0x05, 0xdc, 0x04,
        0x00,
    ]);
    // 13. Empty datagram.
    cases.push(Vec::new());
    // 14. An IpAddress of three octets in the agent-addr.
    let mut short_ip = good.clone();
    let ip_at = ent_at + 7 + 1; // after the 7-byte enterprise: 40 04
    short_ip[ip_at] = 3;
    cases.push(short_ip);
    let mut frames: Vec<(u64, Vec<u8>)> = cases
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let ip = ip4(UPS, "192.168.61.10", 0x900 + i as u16).udp(161, 162, m);
            (at(1.0 + i as f64), eth4(MAC_GW, MAC_UPS, &ip))
        })
        .collect();
    let n = frames.len() as f64;
    // 15. A whole, valid trap split into two IP fragments: counted, not reassembled.
    let udp = udp_header(161, 162, &good);
    let (first, second) = udp.split_at(48);
    let mut f1 = ip4(UPS, "192.168.61.10", 0x999);
    f1.flags_frag = 0x2000;
    let mut f2 = ip4(UPS, "192.168.61.10", 0x999);
    f2.flags_frag = 48 / 8;
    frames.push((at(1.0 + n), eth4(MAC_GW, MAC_UPS, &f1.packet(first))));
    frames.push((at(1.1 + n), eth4(MAC_GW, MAC_UPS, &f2.packet(second))));
    // 16. An ICMP port-unreachable quoting a UDP/162 trap: ICMP, not a trap.
    let quoted = ip4(UPS, "192.168.61.10", 0x998).udp(161, 162, &good);
    let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&quoted);
    let c = checksum(&[&icmp]);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut icmp_ip = ip4("192.168.61.10", UPS, 0x997);
    icmp_ip.protocol = 1;
    frames.push((at(2.0 + n), eth4(MAC_UPS, MAC_GW, &icmp_ip.packet(&icmp))));
    // 17. The same trap bytes on a non-SNMP port (syslog): not SNMP.
    frames.push((
        at(3.0 + n),
        eth4(
            MAC_GW,
            MAC_UPS,
            &ip4(UPS, "192.168.61.10", 0x996).udp(5514, 514, &good),
        ),
    ));
    // 18. A frame cut short by the capture's snap length.
    let whole = eth4(
        MAC_GW,
        MAC_UPS,
        &ip4(UPS, "192.168.61.10", 0x995).udp(161, 162, &good),
    );
    frames.push((at(4.0 + n), whole[..60].to_vec()));
    // 19. And one valid trap at the end: the pipeline is not stalled by what came before.
    frames.push((at(5.0 + n), whole));
    write_pcap(
        &dir.join("malformed.pcap"),
        DataLink::ETHERNET,
        false,
        &frames,
    );
}

/// One APC v1 trap from `ups` with `community`, as an Ethernet frame to the gateway.
fn apc_frame(ups: &str, community: &str, specific: i64, text: &str, id: u16) -> Vec<u8> {
    let agent: Ipv4Addr = ups.parse().expect("address");
    let trap = v1_trap(
        community,
        APC,
        agent.octets(),
        specific,
        id as u32 * 100,
        &[(MTRAPARGS_STRING_0, s(text))],
    );
    eth4(
        MAC_GW,
        MAC_UPS,
        &ip4(ups, "192.168.61.10", id).udp(161, 162, &trap),
    )
}

/// An APC card's trap `specific` on outlet group `group` (298 turned on, 299 turned off,
/// 732 command issued): upsOutletGroupControlIndex, then mtrapargsString.
fn apc_group_frame(specific: i64, group: i64, text: &str, id: u16) -> Vec<u8> {
    let agent: Ipv4Addr = UPS.parse().expect("address");
    let index = format!("1.3.6.1.4.1.318.1.1.1.12.3.2.1.1.{group}");
    let trap = v1_trap(
        "public",
        APC,
        agent.octets(),
        specific,
        id as u32 * 100,
        &[(&index, V::Int(group)), (MTRAPARGS_STRING_0, s(text))],
    );
    eth4(
        MAC_GW,
        MAC_UPS,
        &ip4(UPS, "192.168.61.10", id).udp(161, 162, &trap),
    )
}

const NVR_244: &str = "192.168.61.244";
const NVR_251: &str = "192.168.61.251";

fn nvr_mac(nvr: &str) -> [u8; 6] {
    if nvr == NVR_244 {
        MAC_NVR_244
    } else {
        MAC_NVR_251
    }
}

/// A recorder's acknowledgement (enterprise 50001, specific 200) to the gateway.
fn recorder_ack(nvr: &str, id: u16) -> Vec<u8> {
    let agent: Ipv4Addr = nvr.parse().expect("address");
    let ack = snmp(
        Version::V1,
        "public",
        P::TrapV1 {
            enterprise: "1.3.6.1.4.1.50001",
            agent: agent.octets(),
            generic: 6,
            specific: 200,
            uptime: 9_000_000,
        },
        &[],
    );
    eth4(
        MAC_GW,
        nvr_mac(nvr),
        &ip4(nvr, "192.168.61.10", id).udp(50124, 162, &ack),
    )
}

/// A recorder asking its virtual UPS (the gateway's agent) for the charge.
fn recorder_polls_gateway(nvr: &str, id: u16) -> Vec<u8> {
    let get = snmp(
        Version::V1,
        "public",
        P::Req {
            kind: PduType::GET_REQUEST,
            id: 7001,
        },
        &[("1.3.6.1.2.1.33.1.2.4.0", V::Null)],
    );
    eth4(
        MAC_GW,
        nvr_mac(nvr),
        &ip4(nvr, "192.168.61.10", id).udp(50123, 161, &get),
    )
}

/// A recorder's v2c coldStart, to the gateway: it has booted.
fn cold_start(nvr: &str, id: u16) -> Vec<u8> {
    let trap = v2_trap("public", 7002, 1500, "1.3.6.1.6.3.1.1.5.1", &[]);
    eth4(
        MAC_GW,
        nvr_mac(nvr),
        &ip4(nvr, "192.168.61.10", id).udp(50125, 162, &trap),
    )
}

/// nvr-251 polling the UPS's card for charge and runtime, and the card's answers: no
/// runtime (noSuchName, error-index 2); then the charge alone, 20 %.
fn polls_with_an_error() -> ([Vec<u8>; 2], [Vec<u8>; 2]) {
    const CHARGE: &str = "1.3.6.1.2.1.33.1.2.4.0";
    const RUNTIME: &str = "1.3.6.1.2.1.33.1.2.3.0";
    let get = |id, names: &[&str]| {
        let vbs: Vec<(&str, V)> = names.iter().map(|n| (*n, V::Null)).collect();
        snmp(
            Version::V1,
            "public",
            P::Req {
                kind: PduType::GET_REQUEST,
                id,
            },
            &vbs,
        )
    };
    let lacks = snmp(
        Version::V1,
        "public",
        P::Error {
            id: 4700,
            status: 2,
            index: 2,
        },
        &[(CHARGE, V::Null), (RUNTIME, V::Null)],
    );
    let charge = snmp(
        Version::V1,
        "public",
        P::Req {
            kind: PduType::RESPONSE,
            id: 4701,
        },
        &[(CHARGE, V::Int(20))],
    );
    let to_ups = |id, msg: &[u8]| {
        eth4(
            MAC_UPS,
            MAC_NVR_251,
            &ip4(NVR_251, UPS, id).udp(50126, 161, msg),
        )
    };
    let from_ups = |id, msg: &[u8]| {
        eth4(
            MAC_NVR_251,
            MAC_UPS,
            &ip4(UPS, NVR_251, id).udp(161, 50126, msg),
        )
    };
    (
        [
            to_ups(0x3001, &get(4700, &[CHARGE, RUNTIME])),
            to_ups(0x3002, &get(4701, &[CHARGE])),
        ],
        [from_ups(0x0201, &lacks), from_ups(0x0202, &charge)],
    )
}

/// The gateway's requests to the card and the card's answers, as a capture on the
/// gateway sees them: from 192.168.61.10:40162 to the card's agent, with the write
/// community `private`. `talk` is (time, request kind, request id, object, value asked
/// or set, answer's error-status, answer's value); an error-status of -1: the answer
/// never came (no frame).
type CardTalk = (f64, PduType, i32, &'static str, V, i32, V);

fn card_talk(talk: &[CardTalk], first_id: u16) -> Vec<(f64, Vec<u8>)> {
    let mut frames = Vec::new();
    for (n, (t, kind, id, object, asked, status, answer)) in talk.iter().enumerate() {
        let ip_id = first_id + 2 * n as u16;
        let request = snmp(
            Version::V1,
            "private",
            P::Req {
                kind: *kind,
                id: *id,
            },
            &[(object, asked.clone())],
        );
        let response = snmp(
            Version::V1,
            "private",
            P::Error {
                id: *id,
                status: *status,
                index: i32::from(*status != 0),
            },
            &[(object, answer.clone())],
        );
        frames.push((
            *t,
            eth4(
                MAC_UPS,
                MAC_GW,
                &ip4(GATEWAY, UPS, ip_id).udp(40162, 161, &request),
            ),
        ));
        if *status < 0 {
            continue;
        }
        frames.push((
            *t + 0.01,
            eth4(
                MAC_GW,
                MAC_UPS,
                &ip4(UPS, GATEWAY, ip_id + 1).udp(161, 40162, &response),
            ),
        ));
    }
    frames
}

/// APC's outlet group objects (PowerNet-MIB): group 2's pending command and control.
const GROUP_2_PENDING: &str = "1.3.6.1.4.1.318.1.1.1.12.1.2.1.4.2";
const GROUP_2_COMMAND: &str = "1.3.6.1.4.1.318.1.1.1.12.3.2.1.3.2";
/// APC's whole UPS: upsBasicOutputStatus and upsAdvControlRebootShutdownUps.
const OUTPUT_STATUS: &str = "1.3.6.1.4.1.318.1.1.1.4.1.1.0";
const REBOOT_SHUTDOWN_UPS: &str = "1.3.6.1.4.1.318.1.1.1.6.2.2.0";

const ON_BATTERY: &str = "UPS: On battery power in response to an input power problem.";
const RESTORED: &str = "UPS: Utility power has been restored.";
const LOW: &str = "UPS: The battery power is too low to continue to support the load.";
const SELF_TEST: &str = "UPS: Passed a self-test.";

/// The stories a site lives through, each replayed against its `NAME.site.toml` (or the
/// embedded seed site) into a golden decision log.
fn stories(dir: &Path) {
    let write = |name: &str, frames: &[(f64, Vec<u8>)]| {
        let frames: Vec<(u64, Vec<u8>)> = frames.iter().map(|(t, f)| (at(*t), f.clone())).collect();
        write_pcap(&dir.join(name), DataLink::ETHERNET, false, &frames);
    };
    // A story with the gateway's talk with the card among its frames, in time order.
    let write_with_card =
        |name: &str, mut frames: Vec<(f64, Vec<u8>)>, talk: &[CardTalk], id: u16| {
            frames.extend(card_talk(talk, id));
            frames.sort_by(|a, b| a.0.total_cmp(&b.0));
            write(name, &frames);
        };
    // The outlet stories' outage: on battery at 0 s (and again at 60 s), nvr-244's
    // acknowledgement of its order at 125 s, mains back at 300 s, nvr-244's coldStart at
    // `boots`, a self-test closing the capture at 700 s.
    let outlet_outage = |boots: f64| {
        vec![
            (0.0, apc_frame(UPS, "public", 5, ON_BATTERY, 1)),
            (60.0, apc_frame(UPS, "public", 5, ON_BATTERY, 2)),
            (125.0, recorder_ack(NVR_244, 3)),
            (300.0, apc_frame(UPS, "public", 9, RESTORED, 4)),
            (boots, cold_start(NVR_244, 5)),
            (700.0, apc_frame(UPS, "public", 10, SELF_TEST, 6)),
        ]
    };
    // A short blip: power back before the first grace ends; a self-test later closes the capture.
    write(
        "story-blip.pcap",
        &[
            (0.0, apc_frame(UPS, "public", 5, ON_BATTERY, 1)),
            (40.0, apc_frame(UPS, "public", 9, RESTORED, 2)),
            (400.0, apc_frame(UPS, "public", 10, SELF_TEST, 3)),
        ],
    );
    // Power back in the middle of the shedding: tier 2 is down, tier 1 is spared.
    write(
        "story-power-back-mid-shedding.pcap",
        &[
            (0.0, apc_frame(UPS, "public", 5, ON_BATTERY, 1)),
            (60.0, apc_frame(UPS, "public", 5, ON_BATTERY, 2)),
            (300.0, apc_frame(UPS, "public", 9, RESTORED, 3)),
            (700.0, apc_frame(UPS, "public", 10, SELF_TEST, 4)),
        ],
    );
    // Two UPSes failing at different times (story-two-ups.site.toml).
    write(
        "story-two-ups.pcap",
        &[
            (0.0, apc_frame(UPS, "public", 5, ON_BATTERY, 1)),
            (
                200.0,
                apc_frame("192.168.61.249", "public", 5, ON_BATTERY, 2),
            ),
            (400.0, apc_frame(UPS, "public", 7, LOW, 3)),
            (500.0, apc_frame("192.168.61.249", "public", 9, RESTORED, 4)),
            (
                900.0,
                apc_frame("192.168.61.249", "public", 10, SELF_TEST, 5),
            ),
        ],
    );
    // A recorder fed by two UPSes (story-dual-feed.site.toml): the first one's low
    // battery leaves it up (the second carries it); the first comes back and holds; the
    // second's low battery leaves it up (the first carries it again); the first fails
    // once more, and with neither able to carry it, it goes.
    write(
        "story-dual-feed.pcap",
        &[
            (0.0, apc_frame(UPS, "public", 5, ON_BATTERY, 1)),
            (30.0, apc_frame(UPS, "public", 7, LOW, 2)),
            (60.0, apc_frame(UPS, "public", 9, RESTORED, 3)),
            (
                200.0,
                apc_frame("192.168.61.249", "public", 5, ON_BATTERY, 4),
            ),
            (230.0, apc_frame("192.168.61.249", "public", 7, LOW, 5)),
            (260.0, apc_frame(UPS, "public", 5, ON_BATTERY, 6)),
            (290.0, apc_frame(UPS, "public", 7, LOW, 7)),
            (500.0, apc_frame(UPS, "public", 10, SELF_TEST, 8)),
        ],
    );
    // Spoofed low-battery traps: from an unknown address, and with the wrong community.
    write(
        "story-spoofed.pcap",
        &[
            (0.0, apc_frame("192.168.61.66", "public", 7, LOW, 1)),
            (10.0, apc_frame(UPS, "private", 7, LOW, 2)),
            (20.0, apc_frame(UPS, "public", 10, SELF_TEST, 3)),
        ],
    );
    // A recorder that never acknowledges: told with the others once the confirming poll
    // goes unanswered, then again with its back-off (10, 20, 40, 80 s) until its UPS
    // cuts the outlets 3 min after the order, and reported NotAcknowledged; nvr-251
    // acknowledges at once and is never told again.
    write(
        "story-never-acknowledged.pcap",
        &[
            (0.0, apc_frame(UPS, "public", 7, LOW, 1)),
            (8.0, recorder_ack(NVR_251, 2)),
            (300.0, apc_frame(UPS, "public", 10, SELF_TEST, 3)),
        ],
    );
    // A recorder not back in its boot time that returns later: both acknowledge; power
    // comes back at 60 s; nvr-251 polls its virtual UPS at 200 s (back); nvr-244 is
    // silent past its 5 min of boot time (NotBack at 395 s), then its coldStart trap at
    // 500 s: back, late.
    write(
        "story-late-back.pcap",
        &[
            (0.0, apc_frame(UPS, "public", 7, LOW, 1)),
            (8.0, recorder_ack(NVR_251, 2)),
            (9.0, recorder_ack(NVR_244, 3)),
            (60.0, apc_frame(UPS, "public", 9, RESTORED, 4)),
            (200.0, recorder_polls_gateway(NVR_251, 5)),
            (500.0, cold_start(NVR_244, 6)),
            (700.0, apc_frame(UPS, "public", 10, SELF_TEST, 7)),
        ],
    );
    // A UPS that answers a poll with an error: nvr-251 polls the card itself for charge
    // and runtime; the card has no runtime (v1 noSuchName, error-index 2); asked again for
    // the charge alone, it answers 20 %. The answer is an answer: the missing object is
    // reported once, and the charge, under the site's 30 %, shuts everything down.
    let (ask, answer) = polls_with_an_error();
    write(
        "story-poll-error.pcap",
        &[
            (0.0, apc_frame(UPS, "public", 5, ON_BATTERY, 1)),
            (30.0, ask[0].clone()),
            (30.01, answer[0].clone()),
            (30.02, ask[1].clone()),
            (30.03, answer[1].clone()),
            (200.0, apc_frame(UPS, "public", 10, SELF_TEST, 2)),
        ],
    );
    // Giving the power back (story-power-back-outlet.site.toml: each recorder on an
    // outlet group of its own, the card's write community). Power back in the middle of
    // the shedding as in story-power-back-mid-shedding, but nvr-244's group 2 is cycled:
    // ordered at 120 s, it acknowledges; at 210 s (its 90 s of shutdown time) the
    // gateway reads the group's pending command (none), sets ImmediateRebootShutdown,
    // reads it pending; the group goes off, and on again once mains is back (300 s);
    // nvr-244 boots (its coldStart at 420 s): Back. Group 1 (tier 1, spared) untouched.
    // The card says what it does, as APC cards do to their trap receivers: the command
    // issued and group 2 off (210 s), group 2 on again two seconds after mains (302 s).
    let mut outage = outlet_outage(420.0);
    outage.extend([
        (
            210.061,
            apc_group_frame(732, 2, "UPS: Outlet Group 2 command issued.", 7),
        ),
        (
            210.071,
            apc_group_frame(299, 2, "UPS: Outlet Group 2 turned off.", 8),
        ),
        (
            302.0,
            apc_group_frame(298, 2, "UPS: Outlet Group 2 turned on.", 9),
        ),
    ]);
    write_with_card(
        "story-power-back-outlet.pcap",
        outage,
        &[
            (
                210.001,
                PduType::GET_REQUEST,
                9101,
                GROUP_2_PENDING,
                V::Null,
                0,
                V::Int(2),
            ),
            (
                210.021,
                PduType::SET_REQUEST,
                9102,
                GROUP_2_COMMAND,
                V::Int(9),
                0,
                V::Int(9),
            ),
            (
                210.041,
                PduType::GET_REQUEST,
                9103,
                GROUP_2_PENDING,
                V::Null,
                0,
                V::Int(1),
            ),
        ],
        0x5001,
    );
    // A restart in the middle of a cycle (story-restart-mid-cycle.site.toml, the
    // outlet story's site; replayed with `--restart-at 212`, story-restart-mid-cycle.replay-args):
    // at 210 s the gateway reads group 2 (nothing pending) and sets
    // ImmediateRebootShutdown; the card takes it, but its answer never reaches the
    // gateway, which dies; restarted from its journal at 212 s, it reads the group before
    // writing anything: the command is pending, so nothing is set again. Mains returns at
    // 300 s, the group switches on, nvr-244 boots (its coldStart at 420 s): Back.
    write_with_card(
        "story-restart-mid-cycle.pcap",
        outlet_outage(420.0),
        &[
            (
                210.001,
                PduType::GET_REQUEST,
                9301,
                GROUP_2_PENDING,
                V::Null,
                0,
                V::Int(2),
            ),
            (
                210.021,
                PduType::SET_REQUEST,
                9302,
                GROUP_2_COMMAND,
                V::Int(9),
                -1,
                V::Null,
            ),
            (
                212.051,
                PduType::GET_REQUEST,
                7715,
                GROUP_2_PENDING,
                V::Null,
                0,
                V::Int(1),
            ),
        ],
        0x5201,
    );
    // A card that refuses (story-card-refuses.site.toml: the community it was given may
    // only read, so every set is answered noSuchName): both forms of group 2 refused,
    // each sent three times (again 2 s, then 4 s after a refusal); an alert says the
    // outlet is not cycled; once mains is back nvr-244 (with `wol`) is
    // woken, and boots (its coldStart at 335 s): Back.
    // A SET of group 2's command to `value`, answered noSuchName (SNMPv1's refusal).
    let refused = |t: f64, id: i32, value: i64| -> CardTalk {
        (
            t,
            PduType::SET_REQUEST,
            id,
            GROUP_2_COMMAND,
            V::Int(value),
            2,
            V::Int(value),
        )
    };
    write_with_card(
        "story-card-refuses.pcap",
        outlet_outage(335.0),
        &[
            (
                210.001,
                PduType::GET_REQUEST,
                9201,
                GROUP_2_PENDING,
                V::Null,
                0,
                V::Int(2),
            ),
            refused(210.021, 9202, 9),
            refused(212.041, 9203, 9),
            refused(216.061, 9204, 9),
            refused(216.081, 9205, 10),
            refused(218.101, 9206, 10),
            refused(222.121, 9207, 10),
        ],
        0x5101,
    );
    // A whole UPS cycled (story-whole-ups.site.toml: both recorders on the UPS's output):
    // low battery, both ordered at 5 s (the confirming poll unanswered), both
    // acknowledge; at 95 s their shutdown time has passed: the gateway reads the
    // output's status (onBattery), sets rebootShutdownUps and reads it back (sleeping
    // until power returns); mains returns at 200 s, the UPS switches its output on, both
    // boot: Back.
    write_with_card(
        "story-whole-ups.pcap",
        vec![
            (0.0, apc_frame(UPS, "public", 7, LOW, 1)),
            (8.0, recorder_ack(NVR_251, 2)),
            (9.0, recorder_ack(NVR_244, 3)),
            (200.0, apc_frame(UPS, "public", 9, RESTORED, 4)),
            (330.0, cold_start(NVR_244, 5)),
            (340.0, recorder_polls_gateway(NVR_251, 6)),
            (700.0, apc_frame(UPS, "public", 10, SELF_TEST, 7)),
        ],
        &[
            (
                95.001,
                PduType::GET_REQUEST,
                9301,
                OUTPUT_STATUS,
                V::Null,
                0,
                V::Int(3),
            ),
            (
                95.021,
                PduType::SET_REQUEST,
                9302,
                REBOOT_SHUTDOWN_UPS,
                V::Int(2),
                0,
                V::Int(2),
            ),
            (
                95.041,
                PduType::GET_REQUEST,
                9303,
                OUTPUT_STATUS,
                V::Null,
                0,
                V::Int(11),
            ),
        ],
        0x5201,
    );
    // A UPS that does not answer the confirming poll, at a site that then ignores the trap
    // (story-unconfirmed-ignore.site.toml); the seed's trace shows the "shutdown" choice.
    write(
        "story-unconfirmed-ignore.pcap",
        &[
            (0.0, apc_frame(UPS, "public", 7, LOW, 1)),
            (30.0, apc_frame(UPS, "public", 10, SELF_TEST, 2)),
        ],
    );
}

/// One TCP connection of a NUT or apcupsd client to the gateway (192.168.61.10), as
/// the frames a capture on the gateway's port holds: the handshake, each request and
/// its answer, the close.
struct TcpTalk {
    client: &'static str,
    mac: [u8; 6],
    port: u16,
    server_port: u16,
    /// The next sequence number of each side.
    seq: (u32, u32),
    id: u16,
}

const GATEWAY: &str = "192.168.61.10";

impl TcpTalk {
    fn new(client: &'static str, mac: [u8; 6], port: u16, server_port: u16) -> TcpTalk {
        TcpTalk {
            client,
            mac,
            port,
            server_port,
            seq: (port as u32 * 7919, server_port as u32 * 104_729),
            id: port,
        }
    }

    /// One segment, from the client or from the gateway.
    fn segment(&mut self, from_client: bool, flags: u8, payload: &[u8]) -> Vec<u8> {
        let (src, dst, sport, dport) = if from_client {
            (self.client, GATEWAY, self.port, self.server_port)
        } else {
            (GATEWAY, self.client, self.server_port, self.port)
        };
        let (seq, ack) = if from_client {
            (self.seq.0, self.seq.1)
        } else {
            (self.seq.1, self.seq.0)
        };
        let mut t = Vec::with_capacity(20 + payload.len());
        t.extend_from_slice(&sport.to_be_bytes());
        t.extend_from_slice(&dport.to_be_bytes());
        t.extend_from_slice(&seq.to_be_bytes());
        // No ACK on the opening SYN.
        t.extend_from_slice(&if flags == 0x02 { 0 } else { ack }.to_be_bytes());
        t.extend_from_slice(&[0x50, flags, 0xfa, 0xf0, 0, 0, 0, 0]);
        t.extend_from_slice(payload);
        self.id = self.id.wrapping_add(1);
        let mut ip = ip4(src, dst, self.id);
        ip.protocol = 6;
        let len = (t.len() as u16).to_be_bytes();
        let c = checksum(&[&ip.src.octets(), &ip.dst.octets(), &[0, 6], &len, &t]);
        t[16..18].copy_from_slice(&c.to_be_bytes());
        // SYN and FIN take a sequence number each.
        let used = payload.len() as u32 + u32::from(flags & 0x03 != 0);
        if from_client {
            self.seq.0 = self.seq.0.wrapping_add(used);
        } else {
            self.seq.1 = self.seq.1.wrapping_add(used);
        }
        let (dst_mac, src_mac) = if from_client {
            (MAC_GW, self.mac)
        } else {
            (self.mac, MAC_GW)
        };
        eth4(dst_mac, src_mac, &ip.packet(&t))
    }

    /// The three-way handshake at `t`.
    fn open(&mut self, t: f64, out: &mut Vec<(f64, Vec<u8>)>) {
        out.push((t, self.segment(true, 0x02, b"")));
        out.push((t + 0.0002, self.segment(false, 0x12, b"")));
        out.push((t + 0.0004, self.segment(true, 0x10, b"")));
    }

    /// A request at `t` and the gateway's answer just after.
    fn ask(&mut self, t: f64, request: &[u8], answer: &[u8], out: &mut Vec<(f64, Vec<u8>)>) {
        out.push((t, self.segment(true, 0x18, request)));
        out.push((t + 0.0003, self.segment(false, 0x18, answer)));
        out.push((t + 0.0005, self.segment(true, 0x10, b"")));
    }

    /// The client closes at `t`.
    fn close(&mut self, t: f64, out: &mut Vec<(f64, Vec<u8>)>) {
        out.push((t, self.segment(true, 0x11, b"")));
        out.push((t + 0.0002, self.segment(false, 0x11, b"")));
        out.push((t + 0.0004, self.segment(true, 0x10, b"")));
    }
}

/// A NUT client logs in at `t` (user, password, the UPS name it watches).
fn nut_login(
    c: &mut TcpTalk,
    t: f64,
    user: &str,
    pass: &str,
    ups: &str,
    out: &mut Vec<(f64, Vec<u8>)>,
) {
    c.open(t, out);
    c.ask(
        t + 0.01,
        format!("USERNAME {user}\n").as_bytes(),
        b"OK\n",
        out,
    );
    c.ask(
        t + 0.02,
        format!("PASSWORD {pass}\n").as_bytes(),
        b"OK\n",
        out,
    );
    c.ask(t + 0.03, format!("LOGIN {ups}\n").as_bytes(), b"OK\n", out);
}

/// A NUT client's poll of `ups.status` at `t`, answered `status`.
fn nut_poll(c: &mut TcpTalk, t: f64, ups: &str, status: &str, out: &mut Vec<(f64, Vec<u8>)>) {
    c.ask(
        t,
        format!("GET VAR {ups} ups.status\n").as_bytes(),
        format!("VAR {ups} ups.status \"{status}\"\n").as_bytes(),
        out,
    );
}

/// An apcupsd network client's fetch of the status at `t` (its own connection, as
/// apcupsd's net driver makes one per poll), answered with the lines of `view`.
fn nis_fetch(
    c: &mut TcpTalk,
    t: f64,
    name: &str,
    view: &trapgate::engine::nut::NutView,
    out: &mut Vec<(f64, Vec<u8>)>,
) {
    let mut answer = Vec::new();
    for line in trapgate::engine::nis::status_lines(name, view) {
        answer.extend_from_slice(&(line.len() as u16).to_be_bytes());
        answer.extend_from_slice(line.as_bytes());
    }
    answer.extend_from_slice(&[0, 0]);
    c.port += 1;
    c.open(t, out);
    c.ask(t + 0.01, b"\x00\x06status", &answer, out);
    c.close(t + 0.02, out);
}

/// NUT and apcupsd recorders (story-nut.site.toml): a Synology-style NAS in tier 2
/// (UPS `ups`, monuser / secret), a Linux host's upsmon and an apcupsd host in tier 1,
/// all on one APC UPS. On battery at 20 s; the NAS's grace (1 min) ends at 80 s: its
/// poll at 82 s shows `FSD OB LB` and it logs out (acknowledged) while upsmon's poll at
/// 86 s still shows `OB`; low battery at 100 s: upsmon sees FSD at 101 s and logs out,
/// apcupsd fetches `ONBATT LOWBATT` at 103 s (presented: all apcupsd says); power back
/// at 250 s; the three come back at 300–320 s.
fn nut_story(dir: &Path) {
    use trapgate::engine::nut::NutView;
    const NAS: &str = "192.168.61.30";
    const UPSMON: &str = "192.168.61.31";
    const APCUPSD: &str = "192.168.61.32";
    let mut f: Vec<(f64, Vec<u8>)> = Vec::new();
    let mut nas = TcpTalk::new(NAS, [0x00, 0x11, 0x32, 0x3d, 0x61, 0x1e], 41000, 3493);
    let mut mon = TcpTalk::new(UPSMON, [0x52, 0x54, 0x00, 0x3d, 0x61, 0x1f], 42000, 3493);
    let mut apc = TcpTalk::new(APCUPSD, [0x52, 0x54, 0x00, 0x3d, 0x61, 0x20], 43000, 3551);
    nut_login(&mut nas, 1.0, "monuser", "secret", "ups", &mut f);
    nut_login(&mut mon, 2.0, "upsmon", "upsmon-pass", "ups-main", &mut f);
    let view = |on_battery: bool, battery_low: bool, forced: bool| NutView {
        on_battery,
        battery_low,
        forced,
        charge: None,
        runtime: None,
        ups_name: "ups-main".into(),
        mfr: "APC",
    };
    // The NAS and upsmon poll every 15 s; apcupsd every 30 s.
    for k in 0..6 {
        let t = 7.0 + 15.0 * k as f64;
        let status = match t {
            t if t < 20.0 => "OL",
            t if t < 80.0 => "OB",
            _ => "FSD OB LB",
        };
        nut_poll(&mut nas, t, "ups", status, &mut f);
    }
    nas.ask(83.0, b"LOGOUT\n", b"OK Goodbye\n", &mut f);
    nas.close(83.01, &mut f);
    for k in 0..7 {
        let t = 11.0 + 15.0 * k as f64;
        let status = match t {
            t if t < 20.0 => "OL",
            t if t < 100.0 => "OB",
            _ => "FSD OB LB",
        };
        nut_poll(&mut mon, t, "ups-main", status, &mut f);
    }
    mon.ask(102.0, b"LOGOUT\n", b"OK Goodbye\n", &mut f);
    mon.close(102.01, &mut f);
    for k in 0..4 {
        let t = 13.0 + 30.0 * k as f64;
        let v = match t {
            t if t < 20.0 => view(false, false, false),
            t if t < 100.0 => view(true, false, false),
            _ => view(true, true, true),
        };
        nis_fetch(&mut apc, t, "srv-apcupsd", &v, &mut f);
    }
    f.push((0.0, apc_frame(UPS, "public", 10, SELF_TEST, 1)));
    f.push((20.0, apc_frame(UPS, "public", 5, ON_BATTERY, 2)));
    f.push((100.0, apc_frame(UPS, "public", 7, LOW, 3)));
    f.push((250.0, apc_frame(UPS, "public", 9, RESTORED, 4)));
    // Back after power returned: the NAS and upsmon log in again (from new ports),
    // apcupsd polls.
    nas.port += 1;
    mon.port += 1;
    nut_login(&mut nas, 300.0, "monuser", "secret", "ups", &mut f);
    nut_poll(&mut nas, 305.0, "ups", "OL", &mut f);
    nut_login(&mut mon, 310.0, "upsmon", "upsmon-pass", "ups-main", &mut f);
    nis_fetch(
        &mut apc,
        320.0,
        "srv-apcupsd",
        &view(false, false, false),
        &mut f,
    );
    f.push((400.0, apc_frame(UPS, "public", 10, SELF_TEST, 5)));
    f.sort_by(|a, b| a.0.total_cmp(&b.0));
    let frames: Vec<(u64, Vec<u8>)> = f.into_iter().map(|(t, b)| (at(t), b)).collect();
    write_pcap(
        &dir.join("story-nut.pcap"),
        DataLink::ETHERNET,
        false,
        &frames,
    );
}

/// What net-snmp's `snmptrap`/`snmpinform -v 3 ARGS` sends, caught on a socket of ours
/// (the inform is not answered: its first try is what a capture holds).
fn net_snmp_v3(tool: &str, args: &[&str], trap: &[&str]) -> Vec<u8> {
    let sink = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    sink.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let to = format!("udp:{}", sink.local_addr().expect("addr"));
    let mut child = std::process::Command::new(tool)
        .args(["-M", "/dev/null", "-v", "3", "-t", "1", "-r", "0"])
        .args(args)
        .arg(&to)
        .args(trap)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{tool} runs (apt-get install snmp): {e}"));
    let mut buf = [0u8; 4096];
    let (n, _) = sink.recv_from(&mut buf).expect("net-snmp's message");
    let _ = child.wait();
    buf[..n].to_vec()
}

/// captures/v3-netsnmp.pcap: the seed's UPS on SNMPv3 (v3-netsnmp.site.toml), its traps
/// and an inform made by net-snmp's own tools at every level, then one replayed late.
/// Made only with `build-captures --v3` (net-snmp salts its encryption at random: each
/// making differs, so the golden logs are blessed again after).
fn v3_netsnmp(dir: &Path) {
    let apc = |specific: &str, text: &'static str| -> Vec<String> {
        vec![
            "".into(),
            format!("1.3.6.1.4.1.318.0.{specific}"),
            MTRAPARGS_STRING_0.into(),
            "s".into(),
            text.into(),
        ]
    };
    // The card's engine (a trap's authoritative engine), and trapgate's (an inform's:
    // v3-netsnmp.site.toml's [gateway] engine_id).
    const CARD: &str = "0x80001f8803001122334455";
    const GATEWAY: &str = "0x80001f8804747261706761746531";
    let user = |name: &str,
                level: &str,
                a: &str,
                ap: &str,
                x: &str,
                xp: &str,
                boots_time: &str|
     -> Vec<String> {
        let engine = if boots_time.starts_with("7,") {
            GATEWAY
        } else {
            CARD
        };
        [
            "-u", name, "-l", level, "-a", a, "-A", ap, "-x", x, "-X", xp, "-e", engine, "-Z",
            boots_time,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let frame = |id: u16, payload: &[u8]| {
        eth4(
            MAC_GW,
            MAC_UPS,
            &ip4(UPS, "192.168.61.10", id).udp(161, 162, payload),
        )
    };
    let run = |tool: &str, who: Vec<String>, what: Vec<String>| {
        let a: Vec<&str> = who.iter().map(String::as_str).collect();
        let b: Vec<&str> = what.iter().map(String::as_str).collect();
        net_snmp_v3(tool, &a, &b)
    };
    let sha = |level: &str, pass: &str, bt: &str| {
        user(
            "upsv3user",
            level,
            "SHA-256",
            pass,
            "AES-256",
            "privpass123",
            bt,
        )
    };
    let first_on_battery = run(
        "snmptrap",
        sha("authNoPriv", "authpass123", "3,1001"),
        apc("5", ON_BATTERY),
    );
    let frames = vec![
        // Below the UPS's level: refused.
        (
            0.0,
            frame(
                1,
                &run(
                    "snmptrap",
                    sha("noAuthNoPriv", "authpass123", "3,1000"),
                    apc("5", ON_BATTERY),
                ),
            ),
        ),
        // authNoPriv: believed; the outage starts.
        (1.0, frame(2, &first_on_battery)),
        // Another user (MD5, DES): it decrypts, and is not the UPS's.
        (
            2.0,
            frame(
                3,
                &run(
                    "snmptrap",
                    user(
                        "md5des",
                        "authPriv",
                        "MD5",
                        "authpass123",
                        "DES",
                        "privpass123",
                        "3,1002",
                    ),
                    apc("7", LOW),
                ),
            ),
        ),
        // A wrong passphrase: refused.
        (
            3.0,
            frame(
                4,
                &run(
                    "snmptrap",
                    sha("authPriv", "wrongpass1", "3,1003"),
                    apc("7", LOW),
                ),
            ),
        ),
        // authPriv, AES-256: low battery, everything shuts down.
        (
            60.0,
            frame(
                5,
                &run(
                    "snmptrap",
                    sha("authPriv", "authpass123", "3,1060"),
                    apc("7", LOW),
                ),
            ),
        ),
        // An inform, authPriv, as a card sends it to trapgate's engine.
        (
            61.0,
            frame(
                6,
                &run(
                    "snmpinform",
                    sha("authPriv", "authpass123", "7,500"),
                    apc("7", LOW),
                ),
            ),
        ),
        // The first on-battery trap again, 400 s on: out of its engine's time window.
        (400.0, frame(7, &first_on_battery)),
    ];
    let frames: Vec<(u64, Vec<u8>)> = frames.into_iter().map(|(t, f)| (at(t), f)).collect();
    write_pcap(
        &dir.join("v3-netsnmp.pcap"),
        DataLink::ETHERNET,
        false,
        &frames,
    );
}

fn main() {
    let dir = Path::new("captures");
    std::fs::create_dir_all(dir).expect("create captures/");
    if std::env::args().any(|a| a == "--v3") {
        v3_netsnmp(dir);
        println!(
            "captures/v3-netsnmp.pcap written; bless its golden logs: TRAPGATE_BLESS=1 cargo test --test captures"
        );
        return;
    }
    seed_trace(dir);
    apc_outage(dir);
    ups_mib_v2c(dir);
    eaton_vlan(dir);
    cyberpower_sll(dir);
    others_ipv6(dir);
    loopback_raw(dir);
    malformed(dir);
    stories(dir);
    nut_story(dir);
    println!("captures written to {}", dir.display());
}
