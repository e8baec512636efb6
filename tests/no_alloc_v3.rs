//! The SNMPv3 hot path allocates nothing per packet either: once a card's engine is
//! known, opening its authPriv traps (user, MAC in constant time, time window, AES
//! decryption into the arena), classifying them and checking them against the UPS's
//! user and level makes no call to the global allocator. A counting allocator proves it.

mod counting;

use std::sync::atomic::Ordering;

use bumpalo::Bump;
use counting::ALLOCATIONS;
use trapgate::classify::{Classifier, Event};
use trapgate::engine::config::{DEFAULT_SITE, Site};
use trapgate::engine::pipeline::{Outcome, Pipeline};
use trapgate::engine::trust::{Says, Trust};
use trapgate::engine::usm::Usm;
use trapgate::time::{Timestamp, ns};
use trapgate::wire::frame::Datagram;
use trapgate::wire::oid::oid;
use trapgate::wire::usm::{AuthProtocol, Keys, PrivProtocol, password_to_key};
use trapgate::wire::v3::{Level, Seal, seal};
use trapgate::wire::{Message, PduType, Value, VarBind, Version};

#[test]
fn v3_auth_priv_traps_are_opened_classified_and_checked_without_allocating() {
    let users = "[[usm_user]]\nname = \"upsv3user\"\nauth_protocol = \"SHA-256\"\nauth_passphrase = \"authpass123\"\npriv_protocol = \"AES\"\npriv_passphrase = \"privpass123\"\n";
    let text = DEFAULT_SITE.replacen(
        "[[ups]]\n",
        &format!("{users}\n[[ups]]\nversion = \"3\"\nuser = \"upsv3user\"\n"),
        1,
    );
    let site = Site::parse(&text).expect("valid");
    let trust = Trust::new(&site);
    let mut pipeline = Pipeline::new(Classifier::builtin(), &[]);
    pipeline.set_usm(Usm::new(&site));
    // The card's traps: the APC ones the seed's UPS sends, each at its own engine time.
    let engine = b"\x80\x00\x13\x70\x05ups-main";
    let auth = AuthProtocol::Sha256;
    let keys = Keys::localized(
        auth,
        &password_to_key(auth, b"authpass123"),
        Some((PrivProtocol::Aes128, &password_to_key(auth, b"privpass123"))),
        engine,
    );
    let trap_oid = oid("1.3.6.1.6.3.1.1.4.1.0");
    let (on_battery, low) = (oid("1.3.6.1.4.1.318.0.5"), oid("1.3.6.1.4.1.318.0.7"));
    let mut traps = Vec::new();
    let mut scratch = Vec::new();
    for i in 0..200u32 {
        let which = if i % 2 == 0 { &on_battery } else { &low };
        let vbs = [VarBind {
            name: trap_oid.as_oid(),
            value: Value::ObjectId(which.as_oid()),
        }];
        let pdu = Message::pdu(Version::V3, b"", PduType::SNMPV2_TRAP, i as i32, &vbs).pdu;
        let s = Seal {
            msg_id: i as i32,
            max_size: 1472,
            reportable: false,
            engine_id: engine,
            boots: 7,
            time: 5_000 + i,
            user: b"upsv3user",
            level: Level::AuthPriv,
            context_engine_id: engine,
            context_name: b"",
            salt: u64::from(i).to_be_bytes(),
        };
        let mut out = Vec::new();
        seal(&pdu, &s, Some(&keys), &mut scratch, &mut out);
        traps.push(out);
    }
    let ups = site.upses[0].address;
    let mut arena = Bump::with_capacity(64 * 1024);
    let (mut believed, mut refused) = (0u64, 0u64);
    let mut run = |arena: &mut Bump, pipeline: &mut Pipeline, round: u64| {
        arena.reset();
        for (i, t) in traps.iter().enumerate() {
            let d = Datagram {
                src: ups,
                dst: "127.0.0.1".parse().unwrap(),
                src_port: 161,
                dst_port: 162,
                payload: t,
            };
            // Our clock moves a second a trap, as the card's does.
            let now = Timestamp(ns::SECOND * (round * 200 + i as u64));
            if let Outcome::Message(d, m, Some(c)) = pipeline.process_datagram(d, arena, now)
                && let Some(who) = trust.who(d.src)
            {
                match trust.at_trap_port(who, &m, Some(c.event)).says {
                    Says::Event(_, Event::OnBattery | Event::LowBattery) => believed += 1,
                    _ => refused += 1,
                }
            }
        }
    };
    // Warm-up: the engine is localized and kept, the arena reaches its size.
    run(&mut arena, &mut pipeline, 0);
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    for _ in 0..50 {
        // The same traps again, on the same clock: within their engine's window (the
        // card's time and ours advance together; USM takes a repeat within 150 s).
        run(&mut arena, &mut pipeline, 0);
    }
    let after = ALLOCATIONS.load(Ordering::SeqCst);
    assert_eq!(refused, 0);
    assert_eq!(believed, 51 * 200, "every trap opened and believed");
    assert_eq!(
        after - before,
        0,
        "allocations during {} v3 traps",
        50 * 200
    );
}
