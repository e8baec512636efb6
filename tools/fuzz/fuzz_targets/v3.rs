//! Fuzzes SNMPv3 with users configured, so that authentication, the time window and
//! decryption run on fuzzed input: the first byte chooses how the rest is used.
//!   0: a whole datagram, opened by the security model (and answered with a Report if
//!      it asks for one);
//!   1: a scoped PDU's plaintext, sealed at authPriv (SHA, AES) with the right keys and
//!      opened: the decrypted bytes, not the MAC, are what is fuzzed;
//!   2: the same at authPriv with DES (its padding);
//!   3: a message of trapgate's own engine opened, and an inform of it answered.
//! No input may panic.
#![no_main]

use std::cell::RefCell;

use bumpalo::Bump;
use libfuzzer_sys::fuzz_target;
use trapgate::engine::config::{DEFAULT_SITE, Site};
use trapgate::engine::usm::{LocalEngine, Usm, UsmRefusal};
use trapgate::time::Timestamp;
use trapgate::wire::usm::{AuthProtocol, Keys, PrivProtocol, password_to_key};
use trapgate::wire::v3::{Level, Seal, seal_scoped};

const USERS: &str = r#"[[usm_user]]
name = "aes"
auth_protocol = "SHA"
auth_passphrase = "authpass123"
priv_protocol = "AES"
priv_passphrase = "privpass123"

[[usm_user]]
name = "des"
auth_protocol = "MD5"
auth_passphrase = "authpass123"
priv_protocol = "DES"
priv_passphrase = "privpass123"
"#;

const ENGINE: &[u8] = b"\x80\x00\x13\x70\x05fuzz!";
const LOCAL: &[u8] = b"\x80\x00\x1f\x88\x04trapgate:fuzz";

struct State {
    usm: Usm,
    aes: Keys,
    des: Keys,
    local_aes: Keys,
}

thread_local! {
    // Built once: a passphrase is a megabyte of hashing.
    static STATE: RefCell<State> = RefCell::new({
        let site = Site::parse(&DEFAULT_SITE.replacen("[[ups]]\n", &format!("{USERS}\n[[ups]]\n"), 1))
            .expect("valid");
        let mut usm = Usm::new(&site);
        usm.set_local(LocalEngine { id: LOCAL.to_vec(), boots: 5 });
        let keys = |auth, privacy, engine: &[u8]| {
            Keys::localized(
                auth,
                &password_to_key(auth, b"authpass123"),
                Some((privacy, &password_to_key(auth, b"privpass123"))),
                engine,
            )
        };
        State {
            usm,
            aes: keys(AuthProtocol::Sha1, PrivProtocol::Aes128, ENGINE),
            des: keys(AuthProtocol::Md5, PrivProtocol::Des, ENGINE),
            local_aes: keys(AuthProtocol::Sha1, PrivProtocol::Aes128, LOCAL),
        }
    });
}

/// `plain` as a scoped PDU's bytes, sealed at authPriv behind a right MAC.
fn sealed(plain: &[u8], user: &[u8], engine: &[u8], keys: &Keys) -> Vec<u8> {
    let s = Seal {
        msg_id: 1,
        max_size: 1472,
        reportable: true,
        engine_id: engine,
        boots: 5,
        time: 0,
        user,
        level: Level::AuthPriv,
        context_engine_id: engine,
        context_name: b"",
        salt: [1; 8],
    };
    let (mut scoped, mut out) = (plain.to_vec(), Vec::new());
    seal_scoped(&s, Some(keys), &mut scoped, &mut out);
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let arena = Bump::new();
    STATE.with_borrow_mut(|s| {
        let now = Timestamp(0);
        let (mut scratch, mut out) = (Vec::new(), Vec::new());
        let message = match mode % 4 {
            0 => rest.to_vec(),
            1 => sealed(rest, b"aes", ENGINE, &s.aes),
            2 => sealed(rest, b"des", ENGINE, &s.des),
            _ => sealed(rest, b"aes", LOCAL, &s.local_aes),
        };
        match s.usm.open(&message, now, &arena) {
            Ok(m) => {
                let _ = s.usm.respond(&m, now, &mut scratch, &mut out);
            }
            Err(trapgate::engine::usm::NotOpened::Refused(why)) => {
                let _ = s.usm.report(&message, why, now, &mut scratch, &mut out);
                let _: UsmRefusal = why;
            }
            Err(_) => {}
        }
    });
});
