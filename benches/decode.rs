//! Decode + classify per packet on the capture corpus (v1 and v2c traps and informs),
//! side by side in one run with the `snmp2` and `snmp-parser` crates decoding the same
//! bytes, and a bare TLV walk over them (the floor: every header read, nothing built).
//!
//! Then the v2c traps again as SNMPv3 authPriv (SHA, AES-128) from one card: opened by
//! the security model (MAC checked, time window, decrypted into the arena) and
//! classified, beside the same traps in v2c.
//!
//! Run: `cargo bench --bench decode`. Samples of each decoder are interleaved so that
//! the noise of a shared machine falls on all of them alike; the median is reported.

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use bumpalo::Bump;
use trapgate::capture::read_capture;
use trapgate::classify::Classifier;
use trapgate::engine::config::{DEFAULT_SITE, Site};
use trapgate::engine::usm::Usm;
use trapgate::time::Timestamp;
use trapgate::wire::Message;
use trapgate::wire::frame::udp_datagram;
use trapgate::wire::usm::{AuthProtocol, Keys, PrivProtocol, password_to_key};
use trapgate::wire::v3::{Level, Seal, seal};

/// Every notification payload in captures/, by version.
fn corpus() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
    let arena = Bump::new();
    let (mut v1, mut v2c) = (Vec::new(), Vec::new());
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("captures/")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    for path in files {
        if !matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("pcap" | "pcapng")
        ) {
            continue;
        }
        read_capture(&path, |f| {
            let Ok(d) = udp_datagram(f.link, f.data) else {
                return;
            };
            let Ok(m) = Message::parse(d.payload, &arena) else {
                return;
            };
            if m.pdu_type().is_notification() {
                match m.version {
                    trapgate::wire::Version::V1 => v1.push(d.payload.to_vec()),
                    trapgate::wire::Version::V2c => v2c.push(d.payload.to_vec()),
                    // Message::parse opens no v3 message.
                    trapgate::wire::Version::V3 => {}
                }
            }
        })
        .expect("capture");
    }
    (v1, v2c)
}

/// The floor: reads every tag and length, descending into constructed elements.
fn tlv_walk(mut buf: &[u8]) -> usize {
    let mut n = 0;
    while buf.len() >= 2 {
        let tag = buf[0];
        let (len, hdr) = if buf[1] < 0x80 {
            (buf[1] as usize, 2)
        } else {
            let k = (buf[1] & 0x7f) as usize;
            if buf.len() < 2 + k || k > 4 {
                return n;
            }
            (
                buf[2..2 + k]
                    .iter()
                    .fold(0usize, |a, &b| (a << 8) | b as usize),
                2 + k,
            )
        };
        if buf.len() < hdr + len {
            return n;
        }
        n += 1;
        if tag & 0x20 != 0 {
            n += tlv_walk(&buf[hdr..hdr + len]);
        }
        buf = &buf[hdr + len..];
    }
    n
}

fn snmp2_decode(p: &[u8]) -> usize {
    match snmp2::Pdu::from_bytes(p) {
        Ok(pdu) => {
            let mut n = pdu.v1_trap_info.is_some() as usize;
            for (name, value) in pdu.varbinds {
                black_box((&name, &value));
                n += 1;
            }
            n
        }
        Err(_) => 0,
    }
}

fn snmp_parser_decode(p: &[u8]) -> usize {
    let parsed = if p.get(4) == Some(&0) {
        snmp_parser::parse_snmp_v1(p)
    } else {
        snmp_parser::parse_snmp_v2c(p)
    };
    match parsed {
        Ok((_, m)) => {
            let mut n = 0;
            for v in m.vars_iter() {
                black_box(v);
                n += 1;
            }
            n
        }
        Err(_) => 0,
    }
}

/// A decoder under test: runs over the whole corpus, returns what it found.
type Decoder<'a> = Box<dyn FnMut(&[Vec<u8>]) -> usize + 'a>;

struct Bench<'a> {
    name: &'static str,
    run: Decoder<'a>,
    samples: Vec<f64>,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}

fn measure(label: &str, packets: &[Vec<u8>], classifier: &Classifier) -> Vec<(&'static str, f64)> {
    let mut arena = Bump::with_capacity(64 * 1024);
    let mut scratch = trapgate::wire::NotificationOidBuf::default();
    let mut decode_arena = Bump::with_capacity(64 * 1024);
    let mut benches: Vec<Bench<'_>> = vec![
        Bench {
            name: "trapgate decode+classify",
            run: Box::new(move |ps: &[Vec<u8>]| {
                arena.reset();
                let mut n = 0;
                for p in ps {
                    // By reference, as the pipeline matches it: moving the message out
                    // of the Result just after it was written would read it back across
                    // the stores that wrote it (a store-forwarding stall).
                    if let Ok(m) = &Message::parse(p, &arena) {
                        n += classifier
                            .classify_message(m, &mut scratch)
                            .map_or(0, |c| c.event as usize + 1);
                    }
                }
                n
            }),
            samples: Vec::new(),
        },
        Bench {
            name: "trapgate decode only",
            run: Box::new(move |ps: &[Vec<u8>]| {
                decode_arena.reset();
                ps.iter()
                    .map(|p| Message::parse(p, &decode_arena).map_or(0, |m| m.varbinds().len()))
                    .sum()
            }),
            samples: Vec::new(),
        },
        Bench {
            name: "snmp2 decode",
            run: Box::new(|ps: &[Vec<u8>]| ps.iter().map(|p| snmp2_decode(p)).sum()),
            samples: Vec::new(),
        },
        Bench {
            name: "snmp-parser decode",
            run: Box::new(|ps: &[Vec<u8>]| ps.iter().map(|p| snmp_parser_decode(p)).sum()),
            samples: Vec::new(),
        },
        Bench {
            name: "bare TLV walk",
            run: Box::new(|ps: &[Vec<u8>]| ps.iter().map(|p| tlv_walk(p)).sum()),
            samples: Vec::new(),
        },
    ];
    // Sanity: every decoder decodes every packet.
    for b in &mut benches {
        assert!((b.run)(packets) > 0, "{} decoded nothing", b.name);
    }
    let reps = (200_000 / packets.len()).max(1);
    for _round in 0..41 {
        for b in &mut benches {
            let t = Instant::now();
            for _ in 0..reps {
                black_box((b.run)(black_box(packets)));
            }
            let ns = t.elapsed().as_nanos() as f64 / (reps * packets.len()) as f64;
            b.samples.push(ns);
        }
    }
    println!(
        "\n{label}: {} packets, {} per sample, 41 interleaved samples",
        packets.len(),
        reps * packets.len()
    );
    // Each round measured every decoder back to back: the ratio within a round is
    // paired, so a slow spell of the shared machine falls on both sides of it.
    let paired = |num: &str, den: &str| {
        let find = |n: &str| {
            benches
                .iter()
                .find(|b| b.name == n)
                .map(|b| b.samples.clone())
                .expect("measured")
        };
        let (a, b) = (find(num), find(den));
        let mut r: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x / y).collect();
        median(&mut r)
    };
    let paired_snmp2 = paired("snmp2 decode", "trapgate decode+classify");
    let paired_walk = paired("trapgate decode+classify", "bare TLV walk");
    let mut out = Vec::new();
    for b in &mut benches {
        let m = median(&mut b.samples);
        let (lo, hi) = (
            b.samples[b.samples.len() / 10],
            b.samples[b.samples.len() * 9 / 10],
        );
        println!(
            "  {:<26} {:>8.1} ns/packet   (p10 {:.1}, p90 {:.1})",
            b.name, m, lo, hi
        );
        out.push((b.name, m));
    }
    let get = |n: &str| {
        out.iter()
            .find(|(k, _)| *k == n)
            .map(|(_, v)| *v)
            .expect("measured")
    };
    let ours = get("trapgate decode+classify");
    println!(
        "  ratios: snmp2 / trapgate = {:.2}x   snmp-parser / trapgate = {:.2}x   trapgate / bare walk = {:.2}x",
        get("snmp2 decode") / ours,
        get("snmp-parser decode") / ours,
        ours / get("bare TLV walk")
    );
    println!(
        "  paired (median of the per-round ratios): snmp2 / trapgate = {paired_snmp2:.2}x   trapgate / bare walk = {paired_walk:.2}x"
    );
    out
}

/// The v2c traps of `v2c` as v3 authPriv traps (SHA, AES-128) from one engine, and the
/// site whose user opens them.
fn as_v3(v2c: &[Vec<u8>]) -> (Vec<Vec<u8>>, Site) {
    let users = r#"[[usm_user]]
name = "upsv3user"
auth_protocol = "SHA"
auth_passphrase = "authpass123"
priv_protocol = "AES"
priv_passphrase = "privpass123"
"#;
    let site = Site::parse(&DEFAULT_SITE.replacen("[[ups]]\n", &format!("{users}\n[[ups]]\n"), 1))
        .expect("valid");
    let engine = b"\x80\x00\x13\x70\x05card-01";
    let (ku, pku) = (
        password_to_key(AuthProtocol::Sha1, b"authpass123"),
        password_to_key(AuthProtocol::Sha1, b"privpass123"),
    );
    let keys = Keys::localized(
        AuthProtocol::Sha1,
        &ku,
        Some((PrivProtocol::Aes128, &pku)),
        engine,
    );
    let arena = Bump::new();
    let mut scratch = Vec::new();
    let sealed = v2c
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let m = Message::parse(p, &arena).ok()?;
            let s = Seal {
                msg_id: i as i32,
                max_size: 1472,
                reportable: false,
                engine_id: engine,
                boots: 3,
                time: 1000,
                user: b"upsv3user",
                level: Level::AuthPriv,
                context_engine_id: engine,
                context_name: b"",
                salt: (i as u64).to_be_bytes(),
            };
            let mut out = Vec::new();
            seal(&m.pdu, &s, Some(&keys), &mut scratch, &mut out);
            Some(out)
        })
        .collect();
    (sealed, site)
}

/// The same traps in v2c and in v3 authPriv, decoded (opened) and classified.
fn measure_v3(v2c: &[Vec<u8>], classifier: &Classifier) {
    let (v3, site) = as_v3(v2c);
    let mut usm = Usm::new(&site);
    let (mut a2, mut a3) = (
        Bump::with_capacity(64 * 1024),
        Bump::with_capacity(64 * 1024),
    );
    let (mut s2, mut s3) = (
        trapgate::wire::NotificationOidBuf::default(),
        trapgate::wire::NotificationOidBuf::default(),
    );
    let mut v2 = |ps: &[Vec<u8>]| -> usize {
        a2.reset();
        let mut n = 0;
        for p in ps {
            if let Ok(m) = &Message::parse(p, &a2) {
                n += classifier
                    .classify_message(m, &mut s2)
                    .map_or(0, |c| c.event as usize + 1);
            }
        }
        n
    };
    let mut v3_open = |ps: &[Vec<u8>]| -> usize {
        a3.reset();
        let mut n = 0;
        for p in ps {
            if let Ok(m) = &usm.open(p, Timestamp(0), &a3) {
                n += classifier
                    .classify_message(m, &mut s3)
                    .map_or(0, |c| c.event as usize + 1);
            }
        }
        n
    };
    assert_eq!(v2(v2c), v3_open(&v3), "the same events from both");
    let reps = (200_000 / v2c.len()).max(1);
    let (mut t2, mut t3, mut diff) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..41 {
        let t = Instant::now();
        for _ in 0..reps {
            black_box(v2(black_box(v2c)));
        }
        let a = t.elapsed().as_nanos() as f64 / (reps * v2c.len()) as f64;
        let t = Instant::now();
        for _ in 0..reps {
            black_box(v3_open(black_box(&v3)));
        }
        let b = t.elapsed().as_nanos() as f64 / (reps * v2c.len()) as f64;
        t2.push(a);
        t3.push(b);
        diff.push(b - a);
    }
    println!(
        "\nthe same {} traps, v2c and SNMPv3 authPriv (SHA, AES-128; v3 {}–{} bytes), 41 interleaved samples",
        v2c.len(),
        v3.iter().map(Vec::len).min().unwrap_or(0),
        v3.iter().map(Vec::len).max().unwrap_or(0)
    );
    println!(
        "  v2c decode+classify          {:>8.1} ns/packet",
        median(&mut t2)
    );
    println!(
        "  v3 authPriv open+classify    {:>8.1} ns/packet",
        median(&mut t3)
    );
    println!(
        "  v3 authPriv costs {:.1} ns more per trap (median of the paired differences)",
        median(&mut diff)
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs this with no argument.
    let quick = !std::env::args().any(|a| a == "--bench");
    let (v1, v2c) = corpus();
    let all: Vec<Vec<u8>> = v1.iter().chain(&v2c).cloned().collect();
    let classifier = Classifier::builtin();
    if quick {
        println!(
            "decode bench: {} traps found; run `cargo bench --bench decode` to measure",
            all.len()
        );
        return;
    }
    println!(
        "machine: {} cores available",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    measure("v1 and v2c traps", &all, &classifier);
    measure("v1 traps", &v1, &classifier);
    measure("v2c traps and informs", &v2c, &classifier);
    measure_v3(&v2c, &classifier);
    measure_forward_form(&v2c);
}

/// What a receive worker writes per forwarded v2c notification (its form with the
/// forwarder binding): spliced from the datagram (`canonical_from`, the workers' way)
/// beside encoded from the decoded message (`canonical`), interleaved, each on messages
/// decoded beforehand.
fn measure_forward_form(v2c: &[Vec<u8>]) {
    use trapgate::engine::forward::{canonical, canonical_from};
    let arena = Bump::new();
    let decoded: Vec<(&[u8], Message<'_>)> = v2c
        .iter()
        .map(|p| (&p[..], Message::parse(p, &arena).expect("decodes")))
        .collect();
    let source: std::net::IpAddr = "127.13.0.1".parse().expect("address");
    let mut out = Vec::with_capacity(1 << 20);
    let reps = (200_000 / decoded.len().max(1)).max(1);
    let mut run = |splice: bool| {
        let t = Instant::now();
        for _ in 0..reps {
            out.clear();
            for (raw, m) in &decoded {
                let wrote = if splice {
                    canonical_from(black_box(raw), black_box(m), source, &mut out)
                } else {
                    canonical(black_box(m), source, &mut out)
                };
                black_box(wrote);
            }
        }
        t.elapsed().as_nanos() as f64 / (reps * decoded.len()) as f64
    };
    let (mut spliced, mut encoded, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..41 {
        let (s, e) = (run(true), run(false));
        spliced.push(s);
        encoded.push(e);
        ratio.push(s / e);
    }
    println!(
        "\nforwarded form of {} v2c notifications, 41 interleaved samples (median ns per notification):",
        decoded.len()
    );
    println!("  spliced from the datagram   {:8.1}", median(&mut spliced));
    println!("  encoded from the message    {:8.1}", median(&mut encoded));
    println!("  spliced / encoded (paired)  {:8.2}x", median(&mut ratio));
}
