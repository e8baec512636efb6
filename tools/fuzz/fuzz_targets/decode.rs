//! Fuzzes the SNMP decoder and classifier with arbitrary UDP payloads: no input may
//! panic, every failure must be a typed error inside the packet, and whatever decodes
//! must encode back to a message that decodes the same.
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
        }
        Err(e) => assert!(e.offset <= data.len()),
    }
});
