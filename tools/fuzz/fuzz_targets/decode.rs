//! Fuzzes the SNMP decoder and classifier with arbitrary UDP payloads: no input may
//! panic, every failure must be a typed error inside the packet, and whatever decodes
//! must encode back to a message that decodes the same. A notification's forwarded forms
//! (`engine::forward`) decode too, the one spliced from the datagram is the one encoded,
//! and the reframed one is the one rebuilt.
#![no_main]

use bumpalo::Bump;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use trapgate::classify::Classifier;
use trapgate::wire::{encode, Message, NotificationOidBuf};

fn classifier() -> &'static Classifier {
    static C: OnceLock<Classifier> = OnceLock::new();
    C.get_or_init(Classifier::builtin)
}

fuzz_target!(|data: &[u8]| {
    let arena = Bump::new();
    match Message::parse(data, &arena) {
        Ok(m) => {
            let mut scratch = NotificationOidBuf::default();
            let _ = classifier().classify_message(&m, &mut scratch);
            let again = encode::to_vec(&m);
            let arena2 = Bump::new();
            let m2 = Message::parse(&again, &arena2).expect("re-encoded message decodes");
            assert_eq!(m, m2);
            forwarded_forms(data, &m);
        }
        Err(e) => assert!(e.offset <= data.len()),
    }
});

fn targets() -> &'static trapgate::engine::forward::Forwarding {
    static F: OnceLock<trapgate::engine::forward::Forwarding> = OnceLock::new();
    F.get_or_init(|| {
        use trapgate::engine::forward::{ForwardVersion, Forwarding, Match, Sources, Target};
        let t = |to: &str, version, community: &str, m: &str| Target {
            to_text: to.into(),
            to: to.parse().expect("address"),
            matches: vec![Match::parse(m).expect("match")],
            version,
            community: community.into(),
            sources: Sources::Any,
            source: None,
        };
        Forwarding::new(vec![
            t("127.0.0.1:1", ForwardVersion::AsReceived, "", "*"),
            t("[::1]:2", ForwardVersion::V2c, &"c".repeat(300), "default"),
            t("127.0.0.3:3", ForwardVersion::V2c, "nms", ".1.3.6.1.4.1.318*"),
        ])
    })
}

fn forwarded_forms(data: &[u8], m: &Message<'_>) {
    use trapgate::engine::forward::{canonical, canonical_from, forwarded, reframe};
    let f = targets();
    for source in ["127.13.0.1", "::1"] {
        let source: std::net::IpAddr = source.parse().expect("address");
        let mask = f.route(m, source, true);
        let mut c = Vec::new();
        if !canonical(m, source, &mut c) {
            assert_eq!(mask, 0, "routed but not forwardable");
            continue;
        }
        let arena = Bump::new();
        let Ok(cm) = Message::parse(&c, &arena) else {
            // Only a message too long to encode back the same (its bindings over the
            // encoder's 4-byte lengths) could; none fits a datagram.
            panic!("canonical form does not decode: {c:02x?}");
        };
        // The receive workers' form, spliced from the datagram: the same message.
        let mut spliced = Vec::new();
        assert!(canonical_from(data, m, source, &mut spliced));
        let a = Bump::new();
        let sm = Message::parse(&spliced, &a).expect("spliced form decodes");
        assert_eq!(sm, cm, "spliced form differs from encoded");
        for t in f.targets() {
            let (mut slow, mut fast) = (Vec::new(), Vec::new());
            forwarded(&cm, t, 7, &mut slow);
            if !slow.is_empty() {
                let a = Bump::new();
                Message::parse(&slow, &a).expect("forwarded form decodes");
            }
            if reframe(&c, t, &mut fast) {
                assert_eq!(fast, slow, "reframed differs from rebuilt");
            }
        }
    }
}
