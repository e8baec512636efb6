//! The User-based Security Model's cryptography (RFC 3414, RFC 7860, RFC 3826), sans-IO:
//! password to key, key localization, HMAC authentication, DES-CBC and AES-CFB privacy.
//!
//! Every primitive is a RustCrypto crate's; this module only composes them as the RFCs
//! say. A localized key is kept as the HMAC already keyed and the cipher already
//! scheduled (`Keys`), so that a packet costs its hashing and decryption and nothing
//! more; a digest is compared in constant time (`hmac`'s `verify_truncated_left`).
//! Nothing here prints a key: `Key` and `Keys` show only their protocols.

use core::fmt;

use aes::cipher::{
    AsyncStreamCipher, BlockDecryptMut, BlockEncryptMut, InnerIvInit, KeyInit, KeyIvInit,
};
use hmac::{Hmac, Mac};
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};

/// An authentication protocol, by its net-snmp name (`-a`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AuthProtocol {
    /// HMAC-MD5-96 (RFC 3414).
    Md5,
    /// HMAC-SHA-96 (RFC 3414).
    Sha1,
    /// HMAC-SHA-224, 128-bit MAC (RFC 7860).
    Sha224,
    /// HMAC-SHA-256, 192-bit MAC (RFC 7860).
    Sha256,
    /// HMAC-SHA-384, 256-bit MAC (RFC 7860).
    Sha384,
    /// HMAC-SHA-512, 384-bit MAC (RFC 7860).
    Sha512,
}

impl AuthProtocol {
    /// Every protocol, in the order a message lists them.
    pub const ALL: [AuthProtocol; 6] = [
        AuthProtocol::Md5,
        AuthProtocol::Sha1,
        AuthProtocol::Sha224,
        AuthProtocol::Sha256,
        AuthProtocol::Sha384,
        AuthProtocol::Sha512,
    ];

    /// Its net-snmp name: `MD5`, `SHA`, `SHA-224`, `SHA-256`, `SHA-384`, `SHA-512`.
    pub fn name(self) -> &'static str {
        match self {
            AuthProtocol::Md5 => "MD5",
            AuthProtocol::Sha1 => "SHA",
            AuthProtocol::Sha224 => "SHA-224",
            AuthProtocol::Sha256 => "SHA-256",
            AuthProtocol::Sha384 => "SHA-384",
            AuthProtocol::Sha512 => "SHA-512",
        }
    }

    /// The protocol of a net-snmp name (case-insensitive; `SHA1` and `SHA-1` too).
    pub fn parse(name: &str) -> Option<AuthProtocol> {
        let n = name.to_ascii_uppercase();
        match n.as_str() {
            "SHA1" | "SHA-1" => Some(AuthProtocol::Sha1),
            _ => AuthProtocol::ALL.into_iter().find(|p| p.name() == n),
        }
    }

    /// The length of its hash, which is the length of its keys.
    pub fn key_len(self) -> usize {
        match self {
            AuthProtocol::Md5 => 16,
            AuthProtocol::Sha1 => 20,
            AuthProtocol::Sha224 => 28,
            AuthProtocol::Sha256 => 32,
            AuthProtocol::Sha384 => 48,
            AuthProtocol::Sha512 => 64,
        }
    }

    /// The length of the MAC a message carries (msgAuthenticationParameters).
    pub fn mac_len(self) -> usize {
        match self {
            AuthProtocol::Md5 | AuthProtocol::Sha1 => 12,
            AuthProtocol::Sha224 => 16,
            AuthProtocol::Sha256 => 24,
            AuthProtocol::Sha384 => 32,
            AuthProtocol::Sha512 => 48,
        }
    }
}

/// A privacy protocol, by its net-snmp name (`-x`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PrivProtocol {
    /// CBC-DES (RFC 3414 §8).
    Des,
    /// CFB128-AES-128 (RFC 3826).
    Aes128,
    /// CFB128-AES-192, its key extended as net-snmp's `-x AES-192` does
    /// (draft-blumenthal-aes-usm-04 §3.1.2.1).
    Aes192,
    /// CFB128-AES-256, its key extended likewise.
    Aes256,
}

impl PrivProtocol {
    /// Every protocol.
    pub const ALL: [PrivProtocol; 4] = [
        PrivProtocol::Des,
        PrivProtocol::Aes128,
        PrivProtocol::Aes192,
        PrivProtocol::Aes256,
    ];

    /// Its net-snmp name: `DES`, `AES`, `AES-192`, `AES-256`.
    pub fn name(self) -> &'static str {
        match self {
            PrivProtocol::Des => "DES",
            PrivProtocol::Aes128 => "AES",
            PrivProtocol::Aes192 => "AES-192",
            PrivProtocol::Aes256 => "AES-256",
        }
    }

    /// The protocol of a net-snmp name (case-insensitive; `AES-128` and `AES128` too).
    pub fn parse(name: &str) -> Option<PrivProtocol> {
        let n = name.to_ascii_uppercase();
        match n.as_str() {
            "AES-128" | "AES128" => Some(PrivProtocol::Aes128),
            "AES192" => Some(PrivProtocol::Aes192),
            "AES256" => Some(PrivProtocol::Aes256),
            _ => PrivProtocol::ALL.into_iter().find(|p| p.name() == n),
        }
    }

    /// The localized key material it needs (DES: the key and the pre-IV).
    pub fn key_len(self) -> usize {
        match self {
            PrivProtocol::Des | PrivProtocol::Aes128 => 16,
            PrivProtocol::Aes192 => 24,
            PrivProtocol::Aes256 => 32,
        }
    }
}

/// A key: a user's (Ku, from a passphrase) or a localized one (Kul). Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Key {
    bytes: [u8; 64],
    len: usize,
}

impl Key {
    fn new(bytes: &[u8]) -> Key {
        let mut k = Key {
            bytes: [0; 64],
            len: bytes.len().min(64),
        };
        k.bytes[..k.len].copy_from_slice(&bytes[..k.len]);
        k
    }

    /// Its bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// A key given as bytes (a localized key from a test vector, say).
    pub fn from_bytes(bytes: &[u8]) -> Key {
        Key::new(bytes)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({} bytes, not shown)", self.len)
    }
}

fn hash(p: AuthProtocol, parts: &[&[u8]]) -> Key {
    fn run<D: Digest>(parts: &[&[u8]]) -> Key {
        let mut d = D::new();
        for part in parts {
            d.update(part);
        }
        Key::new(&d.finalize())
    }
    match p {
        AuthProtocol::Md5 => run::<Md5>(parts),
        AuthProtocol::Sha1 => run::<Sha1>(parts),
        AuthProtocol::Sha224 => run::<Sha224>(parts),
        AuthProtocol::Sha256 => run::<Sha256>(parts),
        AuthProtocol::Sha384 => run::<Sha384>(parts),
        AuthProtocol::Sha512 => run::<Sha512>(parts),
    }
}

/// The user's key from a passphrase (RFC 3414 A.2): the hash of a megabyte of the
/// passphrase repeated. Done once per user and passphrase, when the site is read.
/// An empty passphrase gives the hash of nothing (the site refuses one shorter than 8).
pub fn password_to_key(p: AuthProtocol, passphrase: &[u8]) -> Key {
    const MEGABYTE: usize = 1_048_576;
    fn run<D: Digest>(passphrase: &[u8]) -> Key {
        let mut d = D::new();
        if !passphrase.is_empty() {
            // The passphrase repeated past 64 bytes more than itself: each 64-byte block
            // of the megabyte is a slice of it, starting where the last one ended.
            let n = passphrase.len();
            let repeated: Vec<u8> = passphrase.iter().copied().cycle().take(n + 64).collect();
            let mut at = 0;
            for _ in 0..MEGABYTE / 64 {
                d.update(&repeated[at..at + 64]);
                at = (at + 64) % n;
            }
        }
        Key::new(&d.finalize())
    }
    match p {
        AuthProtocol::Md5 => run::<Md5>(passphrase),
        AuthProtocol::Sha1 => run::<Sha1>(passphrase),
        AuthProtocol::Sha224 => run::<Sha224>(passphrase),
        AuthProtocol::Sha256 => run::<Sha256>(passphrase),
        AuthProtocol::Sha384 => run::<Sha384>(passphrase),
        AuthProtocol::Sha512 => run::<Sha512>(passphrase),
    }
}

/// A user's key localized for an engine (RFC 3414 A.2.1): H(Ku || engineID || Ku).
pub fn localize(p: AuthProtocol, ku: &Key, engine_id: &[u8]) -> Key {
    hash(p, &[ku.as_bytes(), engine_id, ku.as_bytes()])
}

/// The localized privacy key for `privacy` (the user's privacy key localized with the
/// authentication protocol's hash), cut to the length the cipher needs, or extended
/// first as net-snmp does for AES-192 and AES-256 when the hash is shorter:
/// Kul = Kul || H(Kul), until long enough (draft-blumenthal-aes-usm-04 §3.1.2.1).
pub fn privacy_key(p: AuthProtocol, privacy: PrivProtocol, ku: &Key, engine_id: &[u8]) -> Key {
    let mut kul = localize(p, ku, engine_id);
    let need = privacy.key_len();
    while kul.len < need {
        let more = hash(p, &[kul.as_bytes()]);
        let take = (need - kul.len).min(more.len);
        kul.bytes[kul.len..kul.len + take].copy_from_slice(&more.as_bytes()[..take]);
        kul.len += take;
    }
    kul.len = need;
    kul
}

/// An HMAC keyed once, cloned per message.
#[derive(Clone)]
enum Keyed {
    Md5(Hmac<Md5>),
    Sha1(Hmac<Sha1>),
    Sha224(Hmac<Sha224>),
    Sha256(Hmac<Sha256>),
    Sha384(Hmac<Sha384>),
    Sha512(Hmac<Sha512>),
}

/// A cipher scheduled once, with what its IV is made from.
#[derive(Clone)]
enum Cipher {
    Des { key: [u8; 8], pre_iv: [u8; 8] },
    Aes128(aes::Aes128),
    Aes192(aes::Aes192),
    Aes256(aes::Aes256),
}

/// A user's keys localized for one engine: the keyed HMAC and the scheduled cipher.
#[derive(Clone)]
pub struct Keys {
    auth: AuthProtocol,
    mac: Keyed,
    privacy: Option<(PrivProtocol, Cipher)>,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Keys({}, {}, not shown)",
            self.auth.name(),
            self.privacy
                .as_ref()
                .map_or("no privacy", |(p, _)| p.name())
        )
    }
}

/// Why a datagram could not be decrypted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecryptionError;

impl Keys {
    /// The keys of a user with `auth` and (optionally) `privacy`, its user keys `auth_ku`
    /// and `priv_ku`, localized for `engine_id`.
    pub fn localized(
        auth: AuthProtocol,
        auth_ku: &Key,
        privacy: Option<(PrivProtocol, &Key)>,
        engine_id: &[u8],
    ) -> Keys {
        let kul = localize(auth, auth_ku, engine_id);
        let privacy = privacy.map(|(p, ku)| (p, privacy_key(auth, p, ku, engine_id)));
        Keys::from_localized(auth, &kul, privacy.as_ref().map(|(p, k)| (*p, k)))
    }

    /// The keys from localized keys (`privacy`'s key as `privacy_key` makes it).
    pub fn from_localized(
        auth: AuthProtocol,
        auth_kul: &Key,
        privacy: Option<(PrivProtocol, &Key)>,
    ) -> Keys {
        let k = auth_kul.as_bytes();
        // HMAC takes a key of any length: these cannot fail.
        let mac = match auth {
            AuthProtocol::Md5 => Keyed::Md5(Mac::new_from_slice(k).expect("any length")),
            AuthProtocol::Sha1 => Keyed::Sha1(Mac::new_from_slice(k).expect("any length")),
            AuthProtocol::Sha224 => Keyed::Sha224(Mac::new_from_slice(k).expect("any length")),
            AuthProtocol::Sha256 => Keyed::Sha256(Mac::new_from_slice(k).expect("any length")),
            AuthProtocol::Sha384 => Keyed::Sha384(Mac::new_from_slice(k).expect("any length")),
            AuthProtocol::Sha512 => Keyed::Sha512(Mac::new_from_slice(k).expect("any length")),
        };
        let privacy = privacy.map(|(p, key)| {
            let b = key.as_bytes();
            let cipher = match p {
                PrivProtocol::Des => Cipher::Des {
                    key: b[..8].try_into().expect("16 bytes"),
                    pre_iv: b[8..16].try_into().expect("16 bytes"),
                },
                PrivProtocol::Aes128 => {
                    Cipher::Aes128(aes::Aes128::new_from_slice(&b[..16]).expect("16 bytes"))
                }
                PrivProtocol::Aes192 => {
                    Cipher::Aes192(aes::Aes192::new_from_slice(&b[..24]).expect("24 bytes"))
                }
                PrivProtocol::Aes256 => {
                    Cipher::Aes256(aes::Aes256::new_from_slice(&b[..32]).expect("32 bytes"))
                }
            };
            (p, cipher)
        });
        Keys { auth, mac, privacy }
    }

    /// The authentication protocol.
    pub fn auth(&self) -> AuthProtocol {
        self.auth
    }

    /// The privacy protocol, if any.
    pub fn privacy(&self) -> Option<PrivProtocol> {
        self.privacy.as_ref().map(|(p, _)| *p)
    }

    /// The MAC of `message` whose MAC field (`mac_at`, `auth().mac_len()` bytes) counts
    /// as zeros, as the RFC's HMAC is over the message with that field zeroed.
    pub fn mac(&self, message: &[u8], mac_at: usize) -> [u8; 48] {
        let n = self.auth.mac_len();
        let mut out = [0u8; 48];
        fn run<M: Mac + Clone>(m: &M, message: &[u8], at: usize, n: usize, out: &mut [u8]) {
            let mut m = m.clone();
            m.update(&message[..at]);
            m.update(&[0u8; 48][..n]);
            m.update(&message[at + n..]);
            let full = m.finalize().into_bytes();
            out[..n].copy_from_slice(&full[..n]);
        }
        match &self.mac {
            Keyed::Md5(m) => run(m, message, mac_at, n, &mut out),
            Keyed::Sha1(m) => run(m, message, mac_at, n, &mut out),
            Keyed::Sha224(m) => run(m, message, mac_at, n, &mut out),
            Keyed::Sha256(m) => run(m, message, mac_at, n, &mut out),
            Keyed::Sha384(m) => run(m, message, mac_at, n, &mut out),
            Keyed::Sha512(m) => run(m, message, mac_at, n, &mut out),
        }
        out
    }

    /// Whether `message`'s MAC field at `mac_at` (its length the protocol's) is the MAC
    /// of the message: compared in constant time. False for a field of another length
    /// or out of the message.
    pub fn verify(&self, message: &[u8], mac_at: usize, mac_field_len: usize) -> bool {
        let n = self.auth.mac_len();
        if mac_field_len != n || mac_at.checked_add(n).is_none_or(|end| end > message.len()) {
            return false;
        }
        let given = &message[mac_at..mac_at + n];
        fn run<M: Mac + Clone>(m: &M, message: &[u8], at: usize, given: &[u8]) -> bool {
            let n = given.len();
            let mut m = m.clone();
            m.update(&message[..at]);
            m.update(&[0u8; 48][..n]);
            m.update(&message[at + n..]);
            m.verify_truncated_left(given).is_ok()
        }
        match &self.mac {
            Keyed::Md5(m) => run(m, message, mac_at, given),
            Keyed::Sha1(m) => run(m, message, mac_at, given),
            Keyed::Sha224(m) => run(m, message, mac_at, given),
            Keyed::Sha256(m) => run(m, message, mac_at, given),
            Keyed::Sha384(m) => run(m, message, mac_at, given),
            Keyed::Sha512(m) => run(m, message, mac_at, given),
        }
    }

    /// Decrypts `data` in place: the encryptedPDU of a message from an engine at
    /// `boots` and `time`, with `salt` its msgPrivacyParameters (8 bytes). DES needs a
    /// whole number of blocks; the plaintext may end with DES's padding.
    pub fn decrypt(
        &self,
        boots: u32,
        time: u32,
        salt: &[u8],
        data: &mut [u8],
    ) -> Result<(), DecryptionError> {
        let Some((_, cipher)) = &self.privacy else {
            return Err(DecryptionError);
        };
        let salt: [u8; 8] = salt.try_into().map_err(|_| DecryptionError)?;
        match cipher {
            Cipher::Des { key, pre_iv } => {
                if !data.len().is_multiple_of(8) {
                    return Err(DecryptionError);
                }
                let iv: [u8; 8] = core::array::from_fn(|i| pre_iv[i] ^ salt[i]);
                let mut d = cbc::Decryptor::<des::Des>::new(key.into(), &iv.into());
                for block in data.chunks_exact_mut(8) {
                    d.decrypt_block_mut(block.into());
                }
            }
            Cipher::Aes128(c) => aes_cfb(c.clone(), boots, time, salt, data, false),
            Cipher::Aes192(c) => aes_cfb(c.clone(), boots, time, salt, data, false),
            Cipher::Aes256(c) => aes_cfb(c.clone(), boots, time, salt, data, false),
        }
        Ok(())
    }

    /// Encrypts `data` in place for an engine at `boots` and `time` with `salt` (its
    /// msgPrivacyParameters); DES needs it padded to whole blocks first (`pad`).
    pub fn encrypt(&self, boots: u32, time: u32, salt: [u8; 8], data: &mut [u8]) {
        let Some((_, cipher)) = &self.privacy else {
            return;
        };
        match cipher {
            Cipher::Des { key, pre_iv } => {
                let iv: [u8; 8] = core::array::from_fn(|i| pre_iv[i] ^ salt[i]);
                let mut e = cbc::Encryptor::<des::Des>::new(key.into(), &iv.into());
                for block in data.chunks_exact_mut(8) {
                    e.encrypt_block_mut(block.into());
                }
            }
            Cipher::Aes128(c) => aes_cfb(c.clone(), boots, time, salt, data, true),
            Cipher::Aes192(c) => aes_cfb(c.clone(), boots, time, salt, data, true),
            Cipher::Aes256(c) => aes_cfb(c.clone(), boots, time, salt, data, true),
        }
    }

    /// How many bytes the plaintext of `len` bytes takes encrypted (DES: whole blocks).
    pub fn padded_len(&self, len: usize) -> usize {
        match self.privacy {
            Some((PrivProtocol::Des, _)) => len.div_ceil(8) * 8,
            _ => len,
        }
    }
}

/// AES-CFB128 with the IV of RFC 3826 §3.1.2.1: boots, time (big-endian), salt.
fn aes_cfb<C>(cipher: C, boots: u32, time: u32, salt: [u8; 8], data: &mut [u8], encrypt: bool)
where
    C: aes::cipher::BlockCipher
        + aes::cipher::BlockEncrypt
        + aes::cipher::BlockSizeUser<BlockSize = aes::cipher::consts::U16>
        + Clone,
{
    let mut iv = [0u8; 16];
    iv[..4].copy_from_slice(&boots.to_be_bytes());
    iv[4..8].copy_from_slice(&time.to_be_bytes());
    iv[8..].copy_from_slice(&salt);
    if encrypt {
        cfb_mode::Encryptor::<C>::inner_iv_init(cipher, &iv.into()).encrypt(data);
    } else {
        cfb_mode::Decryptor::<C>::inner_iv_init(cipher, &iv.into()).decrypt(data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        crate::wire::hex::decode(s).expect("hex")
    }

    /// RFC 3414 A.3's engine ID.
    const ENGINE: &str = "000000000000000000000002";

    #[test]
    fn password_to_key_and_localization_give_rfc_3414s_vectors() {
        // A.3.1 (MD5) and A.3.2 (SHA), passphrase "maplesyrup".
        let ku = password_to_key(AuthProtocol::Md5, b"maplesyrup");
        assert_eq!(ku.as_bytes(), hex("9faf3283884e92834ebc9847d8edd963"));
        let kul = localize(AuthProtocol::Md5, &ku, &hex(ENGINE));
        assert_eq!(kul.as_bytes(), hex("526f5eed9fcce26f8964c2930787d82b"));
        let ku = password_to_key(AuthProtocol::Sha1, b"maplesyrup");
        assert_eq!(
            ku.as_bytes(),
            hex("9fb5cc0381497b3793528939ff788d5d79145211")
        );
        let kul = localize(AuthProtocol::Sha1, &ku, &hex(ENGINE));
        assert_eq!(
            kul.as_bytes(),
            hex("6695febc9288e36282235fc7151f128497b38f3f")
        );
    }

    #[test]
    fn sha2_keys_give_rfc_7860s_vectors() {
        // RFC 7860: RFC 3414's algorithm with SHA-2; "maplesyrup" and A.3's engine ID,
        // the values computed apart with Python's hashlib.
        let ku = password_to_key(AuthProtocol::Sha256, b"maplesyrup");
        let kul = localize(AuthProtocol::Sha256, &ku, &hex(ENGINE));
        assert_eq!(
            kul.as_bytes(),
            hex("8982e0e549e866db361a6b625d84cccc11162d453ee8ce3a6445c2d6776f0f8b")
        );
        let ku = password_to_key(AuthProtocol::Sha512, b"maplesyrup");
        let kul = localize(AuthProtocol::Sha512, &ku, &hex(ENGINE));
        assert_eq!(
            kul.as_bytes(),
            hex(
                "22a5a36cedfcc085807a128d7bc6c2382167ad6c0dbc5fdff856740f3d84c099ad1ea87a8db096714d9788bd544047c9021e4229ce27e4c0a69250adfcffbb0b"
            )
        );
    }

    #[test]
    fn aes_256_extends_a_short_key_with_the_hash_of_what_it_has() {
        let ku = password_to_key(AuthProtocol::Sha1, b"privpass123");
        let engine = hex("8000000001020304");
        let k = privacy_key(AuthProtocol::Sha1, PrivProtocol::Aes256, &ku, &engine);
        let kul = localize(AuthProtocol::Sha1, &ku, &engine);
        assert_eq!(k.as_bytes().len(), 32);
        assert_eq!(&k.as_bytes()[..20], kul.as_bytes());
        let more = hash(AuthProtocol::Sha1, &[kul.as_bytes()]);
        assert_eq!(&k.as_bytes()[20..], &more.as_bytes()[..12]);
        // A hash long enough needs no extension: SHA-256's key is cut to 32 bytes.
        let ku = password_to_key(AuthProtocol::Sha512, b"privpass123");
        let k = privacy_key(AuthProtocol::Sha512, PrivProtocol::Aes256, &ku, &engine);
        let kul = localize(AuthProtocol::Sha512, &ku, &engine);
        assert_eq!(k.as_bytes(), &kul.as_bytes()[..32]);
    }

    #[test]
    fn a_mac_verifies_and_one_flipped_bit_anywhere_does_not() {
        for auth in AuthProtocol::ALL {
            let ku = password_to_key(auth, b"authpass123");
            let keys = Keys::localized(auth, &ku, None, b"\x80\x00\x1f\x88\x04engine");
            let n = auth.mac_len();
            let mut message = vec![7u8; 100];
            let mac = keys.mac(&message, 40);
            message[40..40 + n].copy_from_slice(&mac[..n]);
            assert!(keys.verify(&message, 40, n), "{auth:?}");
            assert!(!keys.verify(&message, 40, n - 1), "a short field");
            for bit in [0, 40 * 8, 99 * 8 + 7] {
                let mut forged = message.clone();
                forged[bit / 8] ^= 1 << (bit % 8);
                assert!(!keys.verify(&forged, 40, n), "{auth:?} bit {bit}");
            }
            let other = Keys::localized(auth, &ku, None, b"\x80\x00\x1f\x88\x04other!");
            assert!(!other.verify(&message, 40, n), "another engine's key");
        }
    }

    #[test]
    fn what_is_encrypted_decrypts_for_every_cipher_and_not_with_another_salt() {
        for privacy in PrivProtocol::ALL {
            let auth = AuthProtocol::Sha1;
            let ku = password_to_key(auth, b"authpass123");
            let pku = password_to_key(auth, b"privpass123");
            let keys = Keys::localized(auth, &ku, Some((privacy, &pku)), b"engine-1");
            let plain: Vec<u8> = (0..45u8).collect();
            let mut data = plain.clone();
            data.resize(keys.padded_len(plain.len()), 0);
            let salt = [1, 2, 3, 4, 5, 6, 7, 8];
            keys.encrypt(3, 1000, salt, &mut data);
            assert_ne!(&data[..45], &plain[..], "{privacy:?}");
            let mut back = data.clone();
            keys.decrypt(3, 1000, &salt, &mut back).unwrap();
            assert_eq!(&back[..45], &plain[..], "{privacy:?}");
            let mut wrong = data.clone();
            keys.decrypt(3, 1000, &[9; 8], &mut wrong).unwrap();
            assert_ne!(&wrong[..45], &plain[..], "{privacy:?}");
        }
    }

    #[test]
    fn des_refuses_a_part_block_and_every_cipher_a_salt_of_another_length() {
        let auth = AuthProtocol::Md5;
        let ku = password_to_key(auth, b"authpass123");
        let des = Keys::localized(auth, &ku, Some((PrivProtocol::Des, &ku)), b"e");
        assert_eq!(
            des.decrypt(0, 0, &[0; 8], &mut [0; 12]),
            Err(DecryptionError)
        );
        assert_eq!(
            des.decrypt(0, 0, &[0; 7], &mut [0; 16]),
            Err(DecryptionError)
        );
        let none = Keys::localized(auth, &ku, None, b"e");
        assert_eq!(
            none.decrypt(0, 0, &[0; 8], &mut [0; 16]),
            Err(DecryptionError)
        );
    }

    #[test]
    fn protocols_take_net_snmps_names_and_keys_are_never_printed() {
        assert_eq!(AuthProtocol::parse("sha"), Some(AuthProtocol::Sha1));
        assert_eq!(AuthProtocol::parse("SHA-256"), Some(AuthProtocol::Sha256));
        assert_eq!(AuthProtocol::parse("SHA256"), None);
        assert_eq!(PrivProtocol::parse("aes"), Some(PrivProtocol::Aes128));
        assert_eq!(PrivProtocol::parse("AES-256"), Some(PrivProtocol::Aes256));
        assert_eq!(PrivProtocol::parse("3DES"), None);
        let ku = password_to_key(AuthProtocol::Sha1, b"authpass123");
        let shown = format!(
            "{ku:?} {:?}",
            Keys::localized(AuthProtocol::Sha1, &ku, None, b"e")
        );
        assert_eq!(
            shown,
            "Key(20 bytes, not shown) Keys(SHA, no privacy, not shown)"
        );
    }
}
