use bumpalo::Bump;
use std::hint::black_box;
use trapgate::classify::Classifier;
use trapgate::source::frame::udp_datagram;
use trapgate::source::replay::read_capture;
use trapgate::wire::Message;
fn main() {
    let mut ps = Vec::new();
    let arena = Bump::new();
    for f in std::fs::read_dir("captures").unwrap() {
        let p = f.unwrap().path();
        if p.extension()
            .map_or(false, |e| e == "pcap" || e == "pcapng")
        {
            read_capture(&p, |f| {
                if let Ok(d) = udp_datagram(f.link, f.data) {
                    if let Ok(m) = Message::parse(d.payload, &arena) {
                        if m.pdu_type().is_notification() {
                            ps.push(d.payload.to_vec());
                        }
                    }
                }
            })
            .unwrap();
        }
    }
    let c = Classifier::builtin();
    let mode = std::env::args().nth(1).unwrap_or_default();
    let mut arena = Bump::new();
    let mut scratch = trapgate::wire::NotificationOidBuf::default();
    if mode == "trie" {
        let oids: Vec<trapgate::wire::OidBuf> = ps
            .iter()
            .map(|p| {
                let m = Message::parse(p, &arena).unwrap();
                m.notification_oid(&mut scratch).unwrap().to_buf()
            })
            .collect();
        let t = std::time::Instant::now();
        let n = 1_000_000;
        for _ in 0..n {
            for o in &oids {
                black_box(c.classify(black_box(o.as_oid()), &[]));
            }
        }
        println!(
            "trie: {:.1} ns/lookup",
            t.elapsed().as_nanos() as f64 / (n * oids.len()) as f64
        );
        return;
    }
    let t = std::time::Instant::now();
    let n = 200_000;
    for _ in 0..n {
        arena.reset();
        for p in &ps {
            let m = Message::parse(black_box(p), &arena).unwrap();
            if mode == "classify" {
                black_box(c.classify_message(&m, &mut scratch));
            } else {
                black_box(&m);
            }
        }
    }
    println!(
        "{mode}: {:.1} ns/packet",
        t.elapsed().as_nanos() as f64 / (n * ps.len()) as f64
    );
}
#[allow(dead_code)]
fn unused() {}
