//! Real captures and test vectors from other projects (`../shared/captures-public/`),
//! read where they lie, never copied: trapgate must see the same SNMP datagrams as
//! tshark, decode the v1/v2c ones to the same PDU types and varbind OIDs as tshark's
//! dissection, and count (never take for traps) what tshark marks malformed, SNMPv3,
//! the PROTOS malformed traps, the over-long sub-identifier and the trap quoted inside
//! an ICMP error. Skips, saying so, when the folder is absent.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bumpalo::Bump;
use trapgate::capture as replay;
use trapgate::classify::Classifier;
use trapgate::engine::config::Site;
use trapgate::engine::pipeline::{Outcome, Pipeline};
use trapgate::engine::usm::{NotOpened, Usm, UsmRefusal};
use trapgate::time::Timestamp;
use trapgate::wire::v3::Level;
use trapgate::wire::{ErrorKind, Message, PduType, Version};

fn shared() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/captures-public");
    if dir.is_dir() {
        Some(dir)
    } else {
        trapgate::testing::skip(&format!(
            "{} is absent; the public-capture comparison did not run",
            dir.display()
        ));
        None
    }
}

/// What trapgate made of one frame.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Decoded {
        addrs: String,
        payload: Vec<u8>,
        tag: u32,
        oids: Vec<String>,
    },
    Refused {
        addrs: String,
        payload: Vec<u8>,
        kind: ErrorKind,
    },
    NotSnmp,
}

fn addrs(d: &trapgate::wire::frame::Datagram<'_>) -> String {
    format!("{} {} {} {}", d.src, d.src_port, d.dst, d.dst_port)
}

fn replay_all(path: &Path) -> BTreeMap<u64, Seen> {
    let mut pipeline = Pipeline::new(Classifier::builtin(), &[]);
    let mut out = BTreeMap::new();
    replay::replay(path, &mut pipeline, |_, r| {
        let seen = match &r.outcome {
            Outcome::Message(d, m, _) => Seen::Decoded {
                addrs: addrs(d),
                payload: d.payload.to_vec(),
                tag: m.pdu_type().0,
                oids: m.varbinds().iter().map(|v| v.name.to_string()).collect(),
            },
            Outcome::Malformed(d, e) => Seen::Refused {
                addrs: addrs(d),
                payload: d.payload.to_vec(),
                kind: e.kind,
            },
            // SNMPv3 the security model did not open (no user here): its header read.
            Outcome::Refused(d, _) => Seen::Refused {
                addrs: addrs(d),
                payload: d.payload.to_vec(),
                kind: ErrorKind::UnsupportedV3,
            },
            Outcome::NoDatagram(_) | Outcome::OtherPort(_) => Seen::NotSnmp,
        };
        out.insert(r.frame, seen);
    })
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    out
}

/// tshark's view of one frame, from `decoded/NAME.txt`.
#[derive(Debug, Default)]
struct Dissected {
    version: Option<String>,
    malformed: bool,
    oids: Vec<String>,
}

fn dissections(text: &str) -> BTreeMap<u64, Dissected> {
    let mut out = BTreeMap::new();
    let mut current: Option<(u64, Dissected)> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("Frame ") {
            if let Some((n, d)) = current.take() {
                out.insert(n, d);
            }
            let n = rest.split(':').next().and_then(|n| n.parse().ok());
            current = n.map(|n| (n, Dissected::default()));
            continue;
        }
        let Some((_, d)) = current.as_mut() else {
            continue;
        };
        let t = line.trim();
        if t.starts_with("version: ") || t.starts_with("msgVersion: ") {
            d.version = Some(t.split(": ").nth(1).unwrap_or_default().to_string());
        } else if t.contains("Malformed Packet") || t.contains("Warning/Malformed") {
            d.malformed = true;
        } else if let Some(name) = t.strip_prefix("Object Name: ") {
            d.oids
                .push(name.split(' ').next().unwrap_or_default().to_string());
        }
    }
    if let Some((n, d)) = current {
        out.insert(n, d);
    }
    out
}

fn hex(s: &str) -> Vec<u8> {
    trapgate::wire::hex::decode(s).expect("hex")
}

/// Frames where trapgate is stricter than tshark on purpose.
const STRICTER_THAN_TSHARK: &[(&str, u64, ErrorKind)] = &[
    // tshark drops the ten 0x80 paddings and shows 1.3.0; X.690 forbids them.
    (
        "zeek__snmp-oid-subidentifier-too-long.pcap",
        1,
        ErrorKind::OidPadding,
    ),
];

fn compare(dir: &Path, capture: &Path) -> Vec<String> {
    let name = capture.file_name().and_then(|n| n.to_str()).expect("name");
    let payloads = std::fs::read_to_string(dir.join("payloads").join(format!("{name}.tsv")))
        .unwrap_or_else(|_| panic!("payloads for {name}"));
    let decoded = std::fs::read_to_string(dir.join("decoded").join(format!("{name}.txt")))
        .unwrap_or_else(|_| panic!("dissection of {name}"));
    let tshark = dissections(&decoded);
    let ours = replay_all(capture);
    let mut problems = Vec::new();
    let mut snmp_frames = Vec::new();
    for row in payloads.lines().filter(|l| !l.is_empty()) {
        let f: Vec<&str> = row.split('\t').collect();
        let frame: u64 = f[0].parse().expect("frame number");
        snmp_frames.push(frame);
        let want_addrs = format!("{} {} {} {}", f[1], f[2], f[3], f[4]);
        let want_payload = hex(f[6]);
        let dis = tshark.get(&frame);
        let v1_or_v2c = dis
            .and_then(|d| d.version.as_deref())
            .is_some_and(|v| v.starts_with("version-1") || v.starts_with("v2c"));
        let tshark_decoded = !f[5].is_empty() && v1_or_v2c && !dis.is_some_and(|d| d.malformed);
        let stricter = STRICTER_THAN_TSHARK
            .iter()
            .find(|(n, fr, _)| *n == name && *fr == frame);
        let at = format!("{name} frame {frame}");
        match (ours.get(&frame), stricter) {
            (Some(Seen::Refused { kind, .. }), Some((_, _, want))) => {
                if kind != want {
                    problems.push(format!("{at}: refused as {kind:?}, expected {want:?}"));
                }
            }
            (other, Some((_, _, want))) => {
                problems.push(format!("{at}: expected refusal {want:?}, got {other:?}"))
            }
            (
                Some(Seen::Decoded {
                    addrs,
                    payload,
                    tag,
                    oids,
                }),
                None,
            ) => {
                if *addrs != want_addrs || *payload != want_payload {
                    problems.push(format!(
                        "{at}: different datagram ({addrs} vs {want_addrs})"
                    ));
                }
                if !tshark_decoded {
                    problems.push(format!(
                        "{at}: decoded, but tshark says malformed / not v1-v2c"
                    ));
                } else {
                    let want_tag: u32 = f[5].parse().expect("PDU tag");
                    if *tag != want_tag {
                        problems.push(format!("{at}: PDU {tag}, tshark {want_tag}"));
                    }
                    let want_oids = &dis.expect("dissected").oids;
                    if oids != want_oids {
                        problems.push(format!("{at}: varbinds {oids:?}, tshark {want_oids:?}"));
                    }
                }
            }
            (
                Some(Seen::Refused {
                    addrs,
                    payload,
                    kind,
                }),
                None,
            ) => {
                if *addrs != want_addrs || *payload != want_payload {
                    problems.push(format!(
                        "{at}: different datagram ({addrs} vs {want_addrs})"
                    ));
                }
                if tshark_decoded {
                    problems.push(format!("{at}: refused ({kind:?}) but tshark decodes it"));
                }
                let v3 = dis
                    .and_then(|d| d.version.as_deref())
                    .is_some_and(|v| v.starts_with("snmpv3"));
                // SNMPv3: its header read and left to the security model, unless
                // tshark too finds it malformed.
                let tshark_malformed = dis.is_some_and(|d| d.malformed);
                if v3 && *kind != ErrorKind::UnsupportedV3 && !tshark_malformed {
                    problems.push(format!("{at}: SNMPv3 counted as {kind:?}"));
                }
            }
            (other, None) => problems.push(format!("{at}: SNMP datagram not seen: {other:?}")),
        }
    }
    // Frames tshark does not dissect as SNMP are never decoded as SNMP by trapgate
    // (a broken datagram on port 161 is counted as malformed, which tshark shows as data).
    for (frame, seen) in &ours {
        if !snmp_frames.contains(frame) && matches!(seen, Seen::Decoded { .. }) {
            problems.push(format!("{name} frame {frame}: taken for SNMP: {seen:?}"));
        }
    }
    problems
}

#[test]
fn captures_agree_with_tshark_dissection() {
    let Some(dir) = shared() else { return };
    let mut files = Vec::new();
    for sub in ["real", "other"] {
        for e in std::fs::read_dir(dir.join(sub)).expect("readable") {
            files.push(e.expect("entry").path());
        }
    }
    for e in std::fs::read_dir(dir.join("raw_ber")).expect("readable") {
        let p = e.expect("entry").path();
        if p.to_string_lossy().ends_with(".wrapped.pcap") {
            files.push(p);
        }
    }
    files.sort();
    assert!(files.len() >= 13, "{files:?}");
    let problems: Vec<String> = files.iter().flat_map(|f| compare(&dir, f)).collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn malformed_public_packets_are_counted_not_taken_for_traps() {
    let Some(dir) = shared() else { return };
    // PROTOS c06: frames 1-7 are traps (7 spells the tag as `bf 04`), 8-12 are not.
    let protos = replay_all(&dir.join("real/suricata-verify__c06-snmpv1-trap-app-r1-1-12.pcap"));
    for frame in 1..=7 {
        assert!(
            matches!(protos[&frame], Seen::Decoded { tag: 4, .. }),
            "frame {frame}: {:?}",
            protos[&frame]
        );
    }
    for frame in 8..=12 {
        assert!(
            matches!(
                protos[&frame],
                Seen::Refused {
                    kind: ErrorKind::UnknownPdu,
                    ..
                }
            ),
            "frame {frame}: {:?}",
            protos[&frame]
        );
    }
    // The ICMP error quoting a trap: nothing is SNMP.
    let icmp = replay_all(&dir.join("real/tcpdump__icmp-cksum-oobr-3.pcapng"));
    assert!(icmp.values().all(|s| *s == Seen::NotSnmp), "{icmp:?}");
    let oid = replay_all(&dir.join("other/zeek__snmp-oid-subidentifier-too-long.pcap"));
    assert!(matches!(
        oid[&1],
        Seen::Refused {
            kind: ErrorKind::OidPadding,
            ..
        }
    ));
}

#[test]
fn raw_ber_test_vectors() {
    let Some(dir) = shared() else { return };
    let raw = dir.join("raw_ber");
    let arena = Bump::new();
    let bin = |name: &str| std::fs::read(raw.join(name)).expect("vector");
    // Each .bin agrees with its .hex.
    for e in std::fs::read_dir(&raw).expect("readable") {
        let p = e.expect("entry").path();
        if p.extension().is_some_and(|x| x == "bin") {
            let h = std::fs::read_to_string(p.with_extension("hex")).expect("hex twin");
            assert_eq!(
                std::fs::read(&p).expect("bin"),
                hex(h.trim()),
                "{}",
                p.display()
            );
        }
    }
    let coldstart = bin("rusticata__snmpv1_trap_coldstart.bin");
    let m = Message::parse(&coldstart, &arena).expect("coldStart decodes");
    assert_eq!((m.version, m.pdu_type()), (Version::V1, PduType::TRAP_V1));
    let trap1 = bin("gosnmp__trap1.bin");
    let m = Message::parse(&trap1, &arena).expect("gosnmp trap1 decodes");
    assert_eq!(
        (m.version, m.pdu_type()),
        (Version::V2c, PduType::SNMPV2_TRAP)
    );
    assert_eq!(m.varbinds().len(), 5);
    let rasn = bin("rasn__v1_trap_enterprise11779.bin");
    let m = Message::parse(&rasn, &arena).expect("rasn trap decodes");
    let mut scratch = trapgate::wire::NotificationOidBuf::default();
    assert_eq!(
        m.notification_oid(&mut scratch)
            .expect("trap OID")
            .to_string(),
        "1.3.6.1.4.1.11779.1.42.3.7.8.0.2"
    );
    for v3 in [
        "gosnmp__genericV3Trap.bin",
        "gosnmp__snmpV3AuthPrivTrap.bin",
        "rusticata__snmpv3_req.bin",
        "rusticata__snmpv3-report.bin",
        "rusticata__snmpv3_req_encrypted.bin",
    ] {
        let b = bin(v3);
        assert_eq!(
            Message::parse(&b, &arena).map(|_| ()).unwrap_err().kind,
            ErrorKind::UnsupportedV3,
            "{v3}"
        );
    }
    for other in [
        "rusticata__snmpv1_req.bin",
        "rusticata__snmpv2c-get-response.bin",
    ] {
        let b = bin(other);
        let m = Message::parse(&b, &arena).expect(other);
        assert!(!m.pdu_type().is_notification(), "{other}");
    }
    // gosnmp's test array carries 219 bytes after the message: refused, at byte 131.
    let garbage = hex(
        std::fs::read_to_string(raw.join("gosnmp__trap1_with_trailing_garbage.hex"))
            .expect("hex")
            .trim(),
    );
    let err = Message::parse(&garbage, &arena).map(|_| ()).unwrap_err();
    assert_eq!((err.kind, err.offset), (ErrorKind::TrailingData, 131));
}

/// gosnmp's own v3 traps (trap_test.go), whose users and passphrases its tests give:
/// opened by trapgate's security model with the same users, the MAC checked, the
/// authPriv one decrypted (tshark decrypts it to the same bindings with its UAT).
#[test]
fn gosnmps_v3_traps_open_with_their_users_and_a_wrong_passphrase_does_not() {
    let Some(dir) = shared() else { return };
    let raw = dir.join("raw_ber");
    let bin = |name: &str| std::fs::read(raw.join(name)).expect("vector");
    let users = |auth2: &str| {
        format!(
            r#"[[usm_user]]
name = "myuser"
auth_protocol = "MD5"
auth_passphrase = "mypassword"

[[usm_user]]
name = "myuser2"
auth_protocol = "MD5"
auth_passphrase = "{auth2}"
priv_protocol = "AES"
priv_passphrase = "myprivacy2"
"#
        )
    };
    let site = |auth2: &str| {
        let text = trapgate::engine::config::DEFAULT_SITE.replacen(
            "[[ups]]\n",
            &format!("{}\n[[ups]]\n", users(auth2)),
            1,
        );
        Site::parse(&text).expect("valid")
    };
    let arena = Bump::new();
    let mut usm = Usm::new(&site("mypassword2"));
    let generic = bin("gosnmp__genericV3Trap.bin");
    let m = usm
        .open(&generic, Timestamp(0), &arena)
        .expect("authNoPriv opens");
    assert_eq!((m.version, m.community), (Version::V3, &b"myuser"[..]));
    assert_eq!(m.v3.unwrap().level, Level::AuthNoPriv);
    assert_eq!(m.v3.unwrap().header.boots, 15);
    let private = bin("gosnmp__snmpV3AuthPrivTrap.bin");
    let m = usm
        .open(&private, Timestamp(0), &arena)
        .expect("authPriv opens");
    assert_eq!(m.v3.unwrap().level, Level::AuthPriv);
    assert_eq!(m.pdu_type(), PduType::SNMPV2_TRAP);
    let vbs: Vec<String> = m
        .varbinds()
        .iter()
        .map(|v| format!("{} = {}", v.name, v.value))
        .collect();
    assert!(vbs[0].starts_with("1.3.6.1.2.1.1.3.0 = "), "{vbs:?}");
    assert!(vbs[0].contains("400998"), "{vbs:?}");
    assert!(vbs[1].contains("1.3.6.1.4.1.8072.2.3.0.1"), "{vbs:?}");
    assert!(
        vbs[2].starts_with("1.3.6.1.4.1.8072.2.3.2.1 = ") && vbs[2].ends_with("60"),
        "{vbs:?}"
    );
    // Another authentication passphrase: the MAC is wrong.
    let mut wrong = Usm::new(&site("notmypassword"));
    assert_eq!(
        wrong.open(&private, Timestamp(0), &arena).unwrap_err(),
        NotOpened::Refused(UsmRefusal::WrongDigest)
    );
}

#[test]
fn real_v2c_notifications_spliced_for_forwarding_are_what_encoding_them_gives() {
    use trapgate::engine::forward::{canonical, canonical_from};
    let Some(dir) = shared() else { return };
    let mut datagrams = Vec::new();
    for e in std::fs::read_dir(dir.join("payloads")).expect("readable") {
        let p = e.expect("entry").path();
        let text = std::fs::read_to_string(&p).expect("payloads");
        for row in text.lines().filter(|l| !l.is_empty()) {
            let f: Vec<&str> = row.split('\t').collect();
            datagrams.push((format!("{} frame {}", p.display(), f[0]), hex(f[6])));
        }
    }
    for e in std::fs::read_dir(dir.join("raw_ber")).expect("readable") {
        let p = e.expect("entry").path();
        if p.extension().is_some_and(|x| x == "hex") {
            let h = std::fs::read_to_string(&p).expect("hex");
            datagrams.push((p.display().to_string(), hex(h.trim())));
        }
    }
    let mut spliced_v2c = 0;
    for (at, data) in &datagrams {
        let arena = Bump::new();
        let Ok(m) = Message::parse(data, &arena) else {
            continue;
        };
        for source in ["127.13.0.1", "::1"] {
            let source = source.parse().expect("address");
            let (mut from, mut encoded) = (Vec::new(), Vec::new());
            let forwardable = canonical(&m, source, &mut encoded);
            assert_eq!(
                canonical_from(data, &m, source, &mut from),
                forwardable,
                "{at}"
            );
            assert_eq!(
                from, encoded,
                "{at}: the spliced form is not the encoded one"
            );
            if forwardable && m.version == Version::V2c {
                spliced_v2c += 1;
            }
        }
    }
    assert!(
        spliced_v2c >= 2,
        "{spliced_v2c} v2c notifications in the captures"
    );
    eprintln!("{spliced_v2c} forms of v2c notifications spliced as encoded");
}
