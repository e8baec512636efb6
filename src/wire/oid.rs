//! OBJECT IDENTIFIER values (X.690 §8.19), kept in their encoded form.
//!
//! An `Oid` borrows the content octets of an encoded OID after checking them once: no
//! sub-identifier padded with 0x80, none cut off, none above 2^32 - 1, at most 128 arcs
//! (RFC 2578 §3.5). Comparing and matching OIDs then works on the bytes, because the
//! base-128 encoding of each arc is prefix-free: an encoded OID that starts with another
//! encoded OID has it as a prefix arc by arc. Arcs are decoded only for display.

use core::fmt;

use super::error::{Error, ErrorKind, Result};
use super::swar::{HIGH, load8, window, zero_bytes};

/// The most sub-identifiers an SNMP OID may have (RFC 2578 §3.5).
pub const MAX_ARCS: usize = 128;

/// A validated, borrowed, encoded OBJECT IDENTIFIER.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Oid<'a>(&'a [u8]);

impl<'a> Oid<'a> {
    /// Checks the content octets of an OID; `offset` is where they start in the message.
    #[inline]
    pub fn parse(bytes: &'a [u8], offset: usize) -> Result<Oid<'a>> {
        validate(bytes, offset)?;
        Ok(Oid(bytes))
    }

    /// The OID `buf[start..stop]`, or None when it is not valid (the error is for
    /// `parse` to name). Reads words across `buf`, which may go on past the OID.
    #[inline(always)]
    pub(crate) fn within(buf: &'a [u8], start: usize, stop: usize) -> Option<Oid<'a>> {
        let bytes = &buf[start..stop];
        (usual(buf, start, stop) || validate_long(bytes, start).is_ok()).then_some(Oid(bytes))
    }

    /// Wraps bytes that are valid by construction (built from validated OIDs and
    /// whole arcs); never call it on bytes from the network.
    pub(crate) fn trusted(bytes: &'a [u8]) -> Oid<'a> {
        debug_assert!(validate(bytes, 0).is_ok());
        Oid(bytes)
    }

    /// The encoded content octets.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    /// True if `prefix` is this OID or an ancestor of it.
    pub fn starts_with(&self, prefix: Oid<'_>) -> bool {
        self.0.starts_with(prefix.0)
    }

    /// The arcs, decoded.
    pub fn arcs(&self) -> impl Iterator<Item = u32> + 'a {
        arcs_of(self.0)
    }

    /// An owned copy.
    pub fn to_buf(&self) -> OidBuf {
        OidBuf(self.0.to_vec())
    }
}

/// Checks encoded OID content: every sub-identifier minimal (no leading 0x80), none cut
/// off, none above 2^32 - 1, at most 128 arcs.
#[inline(always)]
fn validate(bytes: &[u8], offset: usize) -> Result<()> {
    if usual(bytes, 0, bytes.len()) {
        return Ok(());
    }
    validate_long(bytes, offset)
}

/// The usual OID, `buf[start..stop]`, decided in a few word operations: 1 to 16 bytes,
/// the last one ending a sub-identifier, no byte 0x80 anywhere (so none pads a
/// sub-identifier), and at most three continuation bytes in all (so no sub-identifier
/// is long enough to pass 2^32). False sends the OID to the exact check, which also
/// takes what this refuses but is valid (an arc of 128, 16384, or above 2^21).
/// The words are loaded from `buf`, which may go on past the OID (a packet), so that
/// most loads are one instruction.
#[inline(always)]
pub(crate) fn usual(buf: &[u8], start: usize, stop: usize) -> bool {
    let n = stop - start;
    if !(1..=16).contains(&n) || buf[stop - 1] & 0x80 != 0 {
        return false;
    }
    // Inside a packet: sixteen bytes in two loads behind one bounds check (measured
    // about 1 ns a packet faster than two `window`s); near the end, `window`.
    let (lo, hi) = match buf.get(start..start + 16) {
        Some(w) => (load8(&w[..8]), load8(&w[8..])),
        None if n > 8 => (window(buf, start), window(buf, start + 8)),
        None => (window(buf, start), 0),
    };
    // Only the OID's own bytes.
    let (lo, hi) = if n > 8 {
        (lo, hi & bytes_mask(n - 8))
    } else {
        (lo & bytes_mask(n), 0)
    };
    // One bit per continuation byte, summed into the top byte by a multiplication (no
    // popcount in the baseline x86-64 instruction set).
    let marks = ((lo & HIGH) >> 7) + ((hi & HIGH) >> 7);
    let continuation = marks.wrapping_mul(0x0101_0101_0101_0101) >> 56;
    // Bytes equal to 0x80 become zero under `^ HIGH`; the zero fill beyond `n` does not.
    continuation <= 3 && zero_bytes(lo ^ HIGH) | zero_bytes(hi ^ HIGH) == 0
}

/// The low `len` bytes of a word (1 to 8).
#[inline(always)]
fn bytes_mask(len: usize) -> u64 {
    u64::MAX >> (64 - 8 * len)
}

/// Every other case: empty, cut off, longer than 16 bytes, or with a suspect
/// sub-identifier; eight bytes at a time, exact errors from the byte-by-byte check.
#[inline(never)]
fn validate_long(bytes: &[u8], offset: usize) -> Result<()> {
    let n = bytes.len();
    let Some(&last) = bytes.last() else {
        return Err(Error::new(ErrorKind::OidEmpty, offset));
    };
    if last & 0x80 != 0 {
        return Err(Error::new(ErrorKind::OidTruncated, offset + n - 1));
    }
    if n <= 16 {
        return validate_bytewise(bytes, offset);
    }
    let mut prev = 0u64; // continuation bits of the previous chunk
    let mut suspicious = 0u64;
    let mut at = 0;
    while at < n {
        let x = window(bytes, at);
        let hi = x & HIGH;
        // Continuation bit of the byte before each byte (carrying in the last chunk's).
        let before1 = (hi << 8) | (prev >> 56);
        let is_80 = zero_bytes(x ^ HIGH);
        let before2 = (hi << 16) | (prev >> 48);
        let before3 = (hi << 24) | (prev >> 40);
        suspicious |= hi & before1 & before2 & before3;
        let padding = is_80 & !before1;
        if padding != 0 {
            if suspicious != 0 {
                // An over-long arc may come first: let the exact check order them.
                return validate_bytewise(bytes, offset);
            }
            let i = at + (padding.trailing_zeros() / 8) as usize;
            return Err(Error::new(ErrorKind::OidPadding, offset + i));
        }
        prev = hi;
        at += 8;
    }
    if suspicious != 0 {
        return validate_bytewise(bytes, offset);
    }
    // Arcs = sub-identifiers + 1 <= bytes + 1: only long OIDs need counting.
    if n >= MAX_ARCS {
        let subs = bytes.iter().filter(|&&b| b & 0x80 == 0).count();
        if subs + 1 > MAX_ARCS {
            return Err(Error::new(ErrorKind::OidTooManyArcs, offset));
        }
    }
    Ok(())
}

/// The byte-by-byte check, for OIDs with a sub-identifier of five or more bytes.
#[cold]
fn validate_bytewise(bytes: &[u8], offset: usize) -> Result<()> {
    let mut value: u64 = 0;
    let mut start = true;
    let mut arcs = 1usize;
    for (i, &b) in bytes.iter().enumerate() {
        if start && b == 0x80 {
            return Err(Error::new(ErrorKind::OidPadding, offset + i));
        }
        value = (value << 7) | (b & 0x7f) as u64;
        if value > u32::MAX as u64 {
            return Err(Error::new(ErrorKind::OidArcTooLarge, offset + i));
        }
        start = b & 0x80 == 0;
        if start {
            arcs += 1;
            value = 0;
        }
    }
    if arcs > MAX_ARCS {
        return Err(Error::new(ErrorKind::OidTooManyArcs, offset));
    }
    Ok(())
}

impl fmt::Display for Oid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, arc) in arcs_of(self.0).enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{arc}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Oid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Oid({self})")
    }
}

/// Decodes the arcs of validated OID content octets.
fn arcs_of(bytes: &[u8]) -> impl Iterator<Item = u32> + '_ {
    let mut subs = bytes.split_inclusive(|&b| b & 0x80 == 0).map(|s| {
        s.iter()
            .fold(0u32, |acc, &b| (acc << 7) | (b & 0x7f) as u32)
    });
    let first = subs.next();
    let split = first.map(|v| match v {
        0..=39 => [0, v],
        40..=79 => [1, v - 40],
        _ => [2, v - 80],
    });
    split.into_iter().flatten().chain(subs)
}

/// An owned encoded OID, for rule tables and the encoder.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OidBuf(Vec<u8>);

impl OidBuf {
    /// Encodes a list of arcs. At least two arcs; the first 0, 1 or 2; the second below
    /// 40 unless the first is 2.
    pub fn from_arcs(arcs: &[u32]) -> core::result::Result<OidBuf, OidSyntaxError> {
        if arcs.len() < 2 {
            return Err(OidSyntaxError("an OID needs at least two arcs"));
        }
        if arcs.len() > MAX_ARCS {
            return Err(OidSyntaxError("an OID has at most 128 arcs"));
        }
        let first = match (arcs[0], arcs[1]) {
            (0 | 1, y) if y < 40 => arcs[0] * 40 + y,
            (2, y) if y <= u32::MAX - 80 => 80 + y,
            (0 | 1, _) => return Err(OidSyntaxError("the second arc must be below 40")),
            (2, _) => return Err(OidSyntaxError("the second arc is too large")),
            _ => return Err(OidSyntaxError("the first arc must be 0, 1 or 2")),
        };
        let mut out = Vec::with_capacity(arcs.len() + 4);
        push_arc(&mut out, first);
        for &a in &arcs[2..] {
            push_arc(&mut out, a);
        }
        Ok(OidBuf(out))
    }

    /// The borrowed, validated view.
    pub fn as_oid(&self) -> Oid<'_> {
        Oid(&self.0)
    }

    /// The encoded content octets.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// This OID with more arcs appended.
    pub fn child(&self, arcs: &[u32]) -> OidBuf {
        let mut out = self.0.clone();
        for &a in arcs {
            push_arc(&mut out, a);
        }
        OidBuf(out)
    }
}

/// Appends one sub-identifier in base 128, most significant group first.
pub fn push_arc(out: &mut Vec<u8>, arc: u32) {
    let (word, n) = arc_word(arc);
    out.extend_from_slice(&word.to_le_bytes()[..n]);
}

/// `arc` in base 128 as the low bytes of a word, first octet lowest (the order it has in
/// memory); returns the word and how many octets it took (1 to 5).
#[inline(always)]
pub(crate) fn arc_word(arc: u32) -> (u64, usize) {
    // One or two octets (every specific-trap number of the tables): no loop.
    if arc < 0x80 {
        return (arc as u64, 1);
    }
    if arc < 0x4000 {
        return ((0x80 | (arc >> 7) | (arc & 0x7f) << 8) as u64, 2);
    }
    let bits = 32 - arc.leading_zeros() as usize;
    let k = bits.div_ceil(7).max(1);
    let mut word = 0u64;
    for i in 0..k {
        let group = (arc >> (7 * (k - 1 - i))) as u64 & 0x7f;
        let more = if i + 1 < k { 0x80 } else { 0 };
        word |= (group | more) << (8 * i);
    }
    (word, k)
}

impl core::str::FromStr for OidBuf {
    type Err = OidSyntaxError;

    /// Parses dotted notation, with or without a leading dot ("1.3.6.1" or ".1.3.6.1").
    fn from_str(s: &str) -> core::result::Result<OidBuf, OidSyntaxError> {
        let s = s.strip_prefix('.').unwrap_or(s);
        let mut arcs = Vec::new();
        for part in s.split('.') {
            let arc = part
                .parse::<u32>()
                .map_err(|_| OidSyntaxError("every arc must be a number from 0 to 4294967295"))?;
            arcs.push(arc);
        }
        OidBuf::from_arcs(&arcs)
    }
}

impl fmt::Display for OidBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_oid().fmt(f)
    }
}

impl fmt::Debug for OidBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OidBuf({self})")
    }
}

/// Why a dotted OID could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OidSyntaxError(pub &'static str);

impl fmt::Display for OidSyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for OidSyntaxError {}

/// Parses a dotted OID known to be valid (rule tables compiled into the program).
pub fn oid(s: &str) -> OidBuf {
    s.parse()
        .unwrap_or_else(|e| panic!("built-in OID {s:?} is invalid: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_and_prints_arcs() {
        let o = oid("1.3.6.1.4.1.318.2.3.3.0");
        assert_eq!(
            o.as_bytes(),
            &[
                0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x3e, 0x02, 0x03, 0x03, 0x00
            ]
        );
        assert_eq!(o.to_string(), "1.3.6.1.4.1.318.2.3.3.0");
        assert_eq!(oid("2.999.3").to_string(), "2.999.3");
        assert_eq!(oid("0.0").as_bytes(), &[0]);
        assert_eq!(oid(".1.3.6.1.4.1.50001").to_string(), "1.3.6.1.4.1.50001");
        assert_eq!(
            oid("1.3.4294967295").as_bytes(),
            &[0x2b, 0x8f, 0xff, 0xff, 0xff, 0x7f]
        );
    }

    #[test]
    fn rejects_bad_dotted_forms() {
        assert!("1".parse::<OidBuf>().is_err());
        assert!("3.1".parse::<OidBuf>().is_err());
        assert!("1.40".parse::<OidBuf>().is_err());
        assert!("1.3.x".parse::<OidBuf>().is_err());
        assert!("1.3.4294967296".parse::<OidBuf>().is_err());
    }

    #[test]
    fn validates_encoded_form() {
        let ok = [0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x3e];
        assert_eq!(Oid::parse(&ok, 0).unwrap().to_string(), "1.3.6.1.4.1.318");
        assert_eq!(
            Oid::parse(&[], 7).unwrap_err(),
            Error::new(ErrorKind::OidEmpty, 7)
        );
        // zeek's snmp-oid-subidentifier-too-long.pcap: 2b then ten 0x80 then 00.
        let zeek = [
            0x2b, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00,
        ];
        assert_eq!(
            Oid::parse(&zeek, 10).unwrap_err(),
            Error::new(ErrorKind::OidPadding, 11)
        );
        assert_eq!(
            Oid::parse(&[0x2b, 0x06, 0x82], 0).unwrap_err(),
            Error::new(ErrorKind::OidTruncated, 2)
        );
        assert_eq!(
            Oid::parse(&[0x2b, 0x90, 0x80, 0x80, 0x80, 0x00], 0).unwrap_err(),
            Error::new(ErrorKind::OidArcTooLarge, 5)
        );
        let long = [0x01u8; 128];
        assert_eq!(
            Oid::parse(&long, 0).unwrap_err().kind,
            ErrorKind::OidTooManyArcs
        );
        assert!(
            Oid::parse(&long[..127], 0).is_ok(),
            "127 sub-ids = 128 arcs"
        );
    }

    #[test]
    fn prefix_on_bytes_respects_arc_boundaries() {
        let apc = oid("1.3.6.1.4.1.318");
        let trap = oid("1.3.6.1.4.1.318.0.7");
        let other = oid("1.3.6.1.4.1.3180");
        assert!(trap.as_oid().starts_with(apc.as_oid()));
        assert!(!other.as_oid().starts_with(apc.as_oid()));
        assert_eq!(apc.child(&[0, 7]), trap);
    }

    /// The straightforward check, arc by arc, that `validate` must agree with.
    fn reference(bytes: &[u8]) -> Option<ErrorKind> {
        if bytes.is_empty() {
            return Some(ErrorKind::OidEmpty);
        }
        if bytes[bytes.len() - 1] & 0x80 != 0 {
            return Some(ErrorKind::OidTruncated);
        }
        let mut value: u64 = 0;
        let mut start = true;
        let mut arcs = 1;
        for &b in bytes {
            if start && b == 0x80 {
                return Some(ErrorKind::OidPadding);
            }
            value = (value << 7) | (b & 0x7f) as u64;
            if value > u32::MAX as u64 {
                return Some(ErrorKind::OidArcTooLarge);
            }
            start = b & 0x80 == 0;
            if start {
                arcs += 1;
                value = 0;
            }
        }
        (arcs > MAX_ARCS).then_some(ErrorKind::OidTooManyArcs)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4_000))]
        #[test]
        fn fast_validation_agrees_with_the_reference(
            bytes in proptest::collection::vec(
                proptest::prop_oneof![0u8..0x80, 0x80u8..=0xff, proptest::strategy::Just(0x80u8), proptest::strategy::Just(0x8fu8)],
                0..140,
            )
        ) {
            let fast = Oid::parse(&bytes, 0).err().map(|e| e.kind);
            proptest::prop_assert_eq!(fast, reference(&bytes));
        }

        /// Read in place inside a packet (words loaded across its neighbours), an OID is
        /// valid exactly when it is valid alone.
        #[test]
        fn in_place_agrees_with_alone(
            before in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..10),
            bytes in proptest::collection::vec(
                proptest::prop_oneof![0u8..0x80, 0x80u8..=0xff, proptest::strategy::Just(0x80u8)],
                0..24,
            ),
            after in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..10),
        ) {
            let packet = [&before[..], &bytes, &after].concat();
            let (start, stop) = (before.len(), before.len() + bytes.len());
            let within = Oid::within(&packet, start, stop).map(|o| o.as_bytes());
            proptest::prop_assert_eq!(within, Oid::parse(&bytes, 0).ok().map(|o| o.as_bytes()));
        }

        /// Every arc is written in as few octets as it needs and reads back the same.
        #[test]
        fn arcs_encode_minimally_and_read_back(arc in proptest::prop_oneof![
            // One and two octets (taken without the loop), then any width.
            0u32..0x80,
            0x80u32..0x4000,
            proptest::prelude::any::<u32>(),
        ]) {
            let (word, n) = arc_word(arc);
            proptest::prop_assert_eq!(word >> (8 * n), 0, "nothing past the octets");
            let o = OidBuf::from_arcs(&[1, 3, arc]).expect("valid arcs");
            proptest::prop_assert_eq!(o.as_bytes().len(), 1 + n);
            proptest::prop_assert!(Oid::parse(o.as_bytes(), 0).is_ok(), "minimal and whole");
            proptest::prop_assert_eq!(o.as_oid().arcs().collect::<Vec<_>>(), vec![1, 3, arc]);
        }
    }

    #[test]
    fn arc_words_at_the_octet_boundaries() {
        let cases: [(u32, &[u8]); 7] = [
            (0, &[0x00]),
            (127, &[0x7f]),
            (128, &[0x81, 0x00]),
            (787, &[0x86, 0x13]),
            (16383, &[0xff, 0x7f]),
            (16384, &[0x81, 0x80, 0x00]),
            (u32::MAX, &[0x8f, 0xff, 0xff, 0xff, 0x7f]),
        ];
        for (arc, octets) in cases {
            let (word, n) = arc_word(arc);
            assert_eq!(&word.to_le_bytes()[..n], octets, "arc {arc}");
        }
    }

    #[test]
    fn arcs_iterator_matches_display() {
        let o = oid("2.100.3.300000");
        let arcs: Vec<u32> = o.as_oid().arcs().collect();
        assert_eq!(arcs, vec![2, 100, 3, 300000]);
    }
}
