//! A zero-copy BER reader (ITU-T X.690 §8) for the subset SNMP uses.
//!
//! `Reader` walks a byte slice as a sequence of tag-length-value elements. Every element
//! it returns borrows its content from the input, and every length is checked against
//! what is left of the enclosing element before anything is read, so no input can make
//! it read past the end or panic. Offsets in errors count from the start of the message.
//!
//! Accepted: low and high tag-number forms (SNMP only uses the low form, but Wireshark
//! and net-snmp read both), definite short and long lengths (non-minimal long forms too,
//! as X.690 §8.1.3.5 allows). Rejected: the indefinite form and lengths of more than
//! four octets.

use super::error::{Error, ErrorKind, Result};

/// The class and constructed bits of an identifier octet, with its tag number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tag {
    /// Bits 8–6 of the identifier octet: class (2 bits) and constructed (1 bit).
    pub form: u8,
    /// The tag number.
    pub number: u32,
}

impl Tag {
    /// The tag of a one-octet identifier.
    pub const fn from_byte(b: u8) -> Tag {
        Tag {
            form: b & 0xe0,
            number: (b & 0x1f) as u32,
        }
    }

    /// The one-octet identifier of this tag, if it has one.
    pub const fn to_byte(self) -> Option<u8> {
        if self.number < 31 {
            Some(self.form | self.number as u8)
        } else {
            None
        }
    }

    /// True for context-specific constructed tags (SNMP PDUs).
    pub const fn is_context_constructed(self) -> bool {
        self.form == 0xa0
    }
}

/// Universal INTEGER.
pub const INTEGER: Tag = Tag::from_byte(0x02);
/// Universal OCTET STRING.
pub const OCTET_STRING: Tag = Tag::from_byte(0x04);
/// Universal NULL.
pub const NULL: Tag = Tag::from_byte(0x05);
/// Universal OBJECT IDENTIFIER.
pub const OBJECT_IDENTIFIER: Tag = Tag::from_byte(0x06);
/// Universal SEQUENCE (constructed).
pub const SEQUENCE: Tag = Tag::from_byte(0x30);
/// SNMP application IpAddress (RFC 2578).
pub const IP_ADDRESS: Tag = Tag::from_byte(0x40);
/// SNMP application Counter32.
pub const COUNTER32: Tag = Tag::from_byte(0x41);
/// SNMP application Gauge32 (also Unsigned32).
pub const GAUGE32: Tag = Tag::from_byte(0x42);
/// SNMP application TimeTicks.
pub const TIME_TICKS: Tag = Tag::from_byte(0x43);
/// SNMP application Opaque.
pub const OPAQUE: Tag = Tag::from_byte(0x44);
/// SNMP application Counter64.
pub const COUNTER64: Tag = Tag::from_byte(0x46);
/// v2 exception noSuchObject (RFC 3416).
pub const NO_SUCH_OBJECT: Tag = Tag::from_byte(0x80);
/// v2 exception noSuchInstance.
pub const NO_SUCH_INSTANCE: Tag = Tag::from_byte(0x81);
/// v2 exception endOfMibView.
pub const END_OF_MIB_VIEW: Tag = Tag::from_byte(0x82);

/// One element: its tag, its content (borrowed) and where the content starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// The element's tag.
    pub tag: Tag,
    /// The content octets.
    pub value: &'a [u8],
    /// Offset of the first content octet from the start of the message.
    pub offset: usize,
    /// Length of the identifier and length octets before the content.
    pub header_len: u8,
}

impl<'a> Tlv<'a> {
    /// Offset of the identifier octet from the start of the message.
    #[inline]
    pub fn start(&self) -> usize {
        self.offset - self.header_len as usize
    }

    /// A reader over this element's content (for constructed elements).
    #[inline]
    pub fn reader(&self) -> Reader<'a> {
        Reader {
            buf: self.value,
            pos: 0,
            base: self.offset,
        }
    }

    /// Fails with `WrongTag` unless this element has tag `tag`.
    #[inline(always)]
    pub fn expect(self, tag: Tag) -> Result<Tlv<'a>> {
        if self.tag == tag {
            Ok(self)
        } else {
            Err(Error::new(ErrorKind::WrongTag, self.start()))
        }
    }

    /// The content as a signed INTEGER of up to 64 bits.
    #[inline]
    pub fn integer(&self) -> Result<i64> {
        decode_i64(self.value, self.offset)
    }

    /// The content as an unsigned 32-bit value (Counter32, Gauge32, TimeTicks), as
    /// `unsigned32` reads it.
    #[inline]
    pub fn unsigned32(&self) -> Result<u32> {
        let v = decode_i64(self.value, self.offset)?;
        unsigned32(v, self.value.len())
            .ok_or_else(|| Error::new(ErrorKind::IntegerTooLarge, self.offset))
    }

    /// The content as an unsigned 64-bit value (Counter64).
    pub fn unsigned64(&self) -> Result<u64> {
        let v = self.value;
        match v.len() {
            0 => Err(Error::new(ErrorKind::IntegerEmpty, self.offset)),
            9 if v[0] == 0 => Ok(be_u64(&v[1..])),
            1..=8 => {
                if v[0] & 0x80 != 0 {
                    // Same tolerance as unsigned32: the bit pattern the agent meant.
                    Ok(decode_i64(v, self.offset)? as u64)
                } else {
                    Ok(be_u64(v))
                }
            }
            _ => Err(Error::new(ErrorKind::IntegerTooLarge, self.offset)),
        }
    }

    /// Fails unless the content is empty (NULL and the v2 exceptions).
    #[inline]
    pub fn empty(&self) -> Result<()> {
        if self.value.is_empty() {
            Ok(())
        } else {
            Err(Error::new(ErrorKind::NullNotEmpty, self.offset))
        }
    }
}

fn be_u64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0u64, |acc, &b| (acc << 8) | b as u64)
}

/// An integer of `len` content octets as an unsigned 32-bit value (Counter32, Gauge32,
/// TimeTicks). A value with the top bit set must carry a leading zero octet (X.690);
/// agents that omit it (encoding 4294967295 as `ff ff ff ff`, which reads as -1) are read
/// as the 32-bit pattern they meant, as net-snmp does.
#[inline(always)]
pub(crate) fn unsigned32(v: i64, len: usize) -> Option<u32> {
    if (0..=u32::MAX as i64).contains(&v) {
        Some(v as u32)
    } else if len <= 4 {
        Some(v as i32 as u32)
    } else {
        None
    }
}

/// An integer as request-id, error-status or error-index: 32 bits, or the unsigned
/// 32-bit pattern of agents that count request-ids as unsigned (kept, as net-snmp does).
#[inline(always)]
pub(crate) fn int32(v: i64) -> Option<i32> {
    i32::try_from(v)
        .ok()
        .or_else(|| u32::try_from(v).ok().map(|u| u as i32))
}

/// Decodes a two's-complement INTEGER of 1 to 8 octets.
///
/// Non-minimal encodings (a leading `00` or `ff` octet that is not needed) are read, as
/// net-snmp reads them; only what does not fit 64 bits is refused.
#[inline]
pub fn decode_i64(bytes: &[u8], offset: usize) -> Result<i64> {
    match bytes.len() {
        0 => Err(Error::new(ErrorKind::IntegerEmpty, offset)),
        1..=8 => {
            let init: i64 = if bytes[0] & 0x80 != 0 { -1 } else { 0 };
            Ok(bytes.iter().fold(init, |acc, &b| (acc << 8) | b as i64))
        }
        _ => {
            // Longer than 8 octets: only sign padding may precede the 8 that matter.
            let (pad, rest) = bytes.split_at(bytes.len() - 8);
            let fill = if rest[0] & 0x80 != 0 { 0xff } else { 0x00 };
            if pad.iter().all(|&b| b == fill) {
                decode_i64(rest, offset + pad.len())
            } else {
                Err(Error::new(ErrorKind::IntegerTooLarge, offset))
            }
        }
    }
}

/// A cursor over a sequence of BER elements.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    /// A reader over a whole message; offsets count from its first byte.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader {
            buf,
            pos: 0,
            base: 0,
        }
    }

    /// True when every element has been read.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Offset of the next unread byte from the start of the message.
    pub fn offset(&self) -> usize {
        self.base + self.pos
    }

    /// The bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos.min(self.buf.len())..]
    }

    fn err(&self, kind: ErrorKind) -> Error {
        Error::new(kind, self.offset())
    }

    #[inline(always)]
    fn byte(&mut self) -> Result<u8> {
        match self.buf.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => Err(self.err(ErrorKind::Truncated)),
        }
    }

    /// Reads the next element, checking that its content fits in what is left.
    #[inline(always)]
    pub fn read(&mut self) -> Result<Tlv<'a>> {
        let start = self.offset();
        let first = self.byte()?;
        let tag = if first & 0x1f != 0x1f {
            Tag::from_byte(first)
        } else {
            self.high_tag(first)?
        };
        let len_at = self.offset();
        let l0 = self.byte()?;
        let len = if l0 < 0x80 {
            l0 as usize
        } else if l0 == 0x80 {
            return Err(Error::new(ErrorKind::IndefiniteLength, len_at));
        } else {
            let n = (l0 & 0x7f) as usize;
            if n > 4 {
                return Err(Error::new(ErrorKind::LengthTooLong, len_at));
            }
            let mut len = 0usize;
            for _ in 0..n {
                len = (len << 8) | self.byte()? as usize;
            }
            len
        };
        let offset = self.offset();
        let left = self.buf.len() - self.pos;
        if len > left {
            return Err(Error::new(ErrorKind::Truncated, len_at));
        }
        let value = &self.buf[self.pos..self.pos + len];
        self.pos += len;
        Ok(Tlv {
            tag,
            value,
            offset,
            header_len: (offset - start) as u8,
        })
    }

    #[cold]
    fn high_tag(&mut self, first: u8) -> Result<Tag> {
        let at = self.offset();
        let mut number: u32 = 0;
        loop {
            let b = self.byte()?;
            if number > (u32::MAX >> 7) {
                return Err(Error::new(ErrorKind::TagTooLong, at));
            }
            number = (number << 7) | (b & 0x7f) as u32;
            if b & 0x80 == 0 {
                return Ok(Tag {
                    form: first & 0xe0,
                    number,
                });
            }
        }
    }

    /// Reads the next element and checks its tag.
    #[inline(always)]
    pub fn expect(&mut self, tag: Tag) -> Result<Tlv<'a>> {
        self.read()?.expect(tag)
    }

    /// Reads an INTEGER.
    #[inline]
    pub fn integer(&mut self) -> Result<i64> {
        self.expect(INTEGER)?.integer()
    }

    /// Reads an OCTET STRING's content.
    #[inline]
    pub fn octets(&mut self) -> Result<&'a [u8]> {
        Ok(self.expect(OCTET_STRING)?.value)
    }

    /// Fails with `TrailingData` unless every byte has been read.
    #[inline]
    pub fn finish(&self) -> Result<()> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(self.err(ErrorKind::TrailingData))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(bytes: &[u8]) -> Result<Tlv<'_>> {
        Reader::new(bytes).read()
    }

    #[test]
    fn short_and_long_lengths() {
        let t = one(&[0x04, 0x03, b'a', b'b', b'c']).unwrap();
        assert_eq!(t.tag, OCTET_STRING);
        assert_eq!(t.value, b"abc");
        assert_eq!(t.offset, 2);
        // Long form, and the non-minimal `82 00 03` that ndpi's capture carries.
        let t = one(&[0x04, 0x81, 0x02, 1, 2]).unwrap();
        assert_eq!(t.value, &[1, 2]);
        let t = one(&[0x04, 0x82, 0x00, 0x01, 9]).unwrap();
        assert_eq!(t.value, &[9]);
        assert_eq!(t.offset, 4);
    }

    #[test]
    fn rejects_indefinite_long_and_overrunning_lengths() {
        assert_eq!(
            one(&[0x30, 0x80, 0, 0]).unwrap_err(),
            Error::new(ErrorKind::IndefiniteLength, 1)
        );
        assert_eq!(
            one(&[0x30, 0x85, 0, 0, 0, 0, 1, 0]).unwrap_err().kind,
            ErrorKind::LengthTooLong
        );
        assert_eq!(
            one(&[0x30, 0x05, 0, 0]).unwrap_err(),
            Error::new(ErrorKind::Truncated, 1)
        );
        assert_eq!(one(&[0x30]).unwrap_err().kind, ErrorKind::Truncated);
        assert_eq!(
            one(&[0x30, 0x82, 0x01]).unwrap_err().kind,
            ErrorKind::Truncated
        );
        // Four-octet lengths that claim gigabytes are a length error, not an allocation.
        assert_eq!(
            one(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).unwrap_err().kind,
            ErrorKind::Truncated
        );
    }

    #[test]
    fn nested_length_cannot_escape_its_parent() {
        // The outer SEQUENCE holds 3 bytes; the inner OCTET STRING claims 4.
        let bytes = [0x30, 0x03, 0x04, 0x04, 0xaa, 0xbb, 0xcc, 0xdd];
        let mut outer = Reader::new(&bytes);
        let seq = outer.read().unwrap();
        assert_eq!(
            seq.reader().read().unwrap_err(),
            Error::new(ErrorKind::Truncated, 3)
        );
    }

    #[test]
    fn high_tag_number_form() {
        // PROTOS c06 frame 7 writes the trap PDU tag 4 as `bf 04`.
        let t = one(&[0xbf, 0x04, 0x00]).unwrap();
        assert_eq!(t.tag, Tag::from_byte(0xa4));
        let t = one(&[0xbf, 0x81, 0x80, 0x04, 0x00]).unwrap();
        assert_eq!(t.tag.number, (1 << 14) | 4);
        assert_eq!(
            one(&[0xbf, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0])
                .unwrap_err()
                .kind,
            ErrorKind::TagTooLong
        );
    }

    #[test]
    fn integers() {
        let int = |b: &[u8]| decode_i64(b, 0);
        assert_eq!(int(&[0x00]), Ok(0));
        assert_eq!(int(&[0x7f]), Ok(127));
        assert_eq!(int(&[0x00, 0x80]), Ok(128));
        assert_eq!(int(&[0xff]), Ok(-1));
        assert_eq!(int(&[0x80]), Ok(-128));
        assert_eq!(
            int(&[0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            Ok(i64::MAX)
        );
        assert_eq!(int(&[0x80, 0, 0, 0, 0, 0, 0, 0]), Ok(i64::MIN));
        assert_eq!(int(&[0x00, 0x00, 0x01]), Ok(1), "non-minimal is read");
        assert_eq!(int(&[]).unwrap_err().kind, ErrorKind::IntegerEmpty);
        assert_eq!(
            int(&[0x01, 0, 0, 0, 0, 0, 0, 0, 0]).unwrap_err().kind,
            ErrorKind::IntegerTooLarge
        );
        assert_eq!(
            int(&[0x00, 0x7f, 0, 0, 0, 0, 0, 0, 1]),
            Ok(0x7f00_0000_0000_0001)
        );
    }

    #[test]
    fn unsigned_application_types() {
        let u32_of = |b: &[u8]| {
            let mut v = vec![0x41, b.len() as u8];
            v.extend_from_slice(b);
            one(&v).unwrap().unsigned32()
        };
        assert_eq!(u32_of(&[0x00, 0xff, 0xff, 0xff, 0xff]), Ok(u32::MAX));
        assert_eq!(
            u32_of(&[0xff, 0xff, 0xff, 0xff]),
            Ok(u32::MAX),
            "net-snmp tolerance"
        );
        assert_eq!(
            u32_of(&[0x01, 0, 0, 0, 0]).unwrap_err().kind,
            ErrorKind::IntegerTooLarge
        );
        let c64 = one(&[
            0x46, 0x09, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ])
        .unwrap();
        assert_eq!(c64.unsigned64(), Ok(u64::MAX));
    }

    #[test]
    fn trailing_data_is_reported_at_its_offset() {
        let bytes = [0x05, 0x00, 0xde, 0xad];
        let mut r = Reader::new(&bytes);
        r.expect(NULL).unwrap().empty().unwrap();
        assert_eq!(r.finish(), Err(Error::new(ErrorKind::TrailingData, 2)));
    }
}
