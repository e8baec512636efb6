//! Variable bindings and their values (RFC 1157 §4.1.1, RFC 3416 §3).
//!
//! ```text
//! VarBind ::= SEQUENCE { name ObjectName, CHOICE { value ObjectSyntax,
//!     unSpecified NULL, noSuchObject [0] IMPLICIT NULL,
//!     noSuchInstance [1] IMPLICIT NULL, endOfMibView [2] IMPLICIT NULL } }
//! ```
//!
//! Values borrow their octets from the packet. A value of a type SNMP does not define
//! is kept as `Value::Other` with its tag, so one odd varbind never costs the whole trap.

use core::fmt;

use super::ber::{self, Tag, Tlv};

use super::error::{Error, ErrorKind, Result};
use super::oid::Oid;

/// The value of a variable binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value<'a> {
    /// INTEGER / Integer32.
    Integer(i64),
    /// OCTET STRING (DisplayString, SnmpAdminString, ...).
    OctetString(&'a [u8]),
    /// NULL (the value of every binding in a request).
    Null,
    /// OBJECT IDENTIFIER.
    ObjectId(Oid<'a>),
    /// IpAddress.
    IpAddress([u8; 4]),
    /// Counter32.
    Counter32(u32),
    /// Gauge32 / Unsigned32.
    Gauge32(u32),
    /// TimeTicks, hundredths of a second.
    TimeTicks(u32),
    /// Opaque (raw octets).
    Opaque(&'a [u8]),
    /// Counter64.
    Counter64(u64),
    /// v2 exception: no such object.
    NoSuchObject,
    /// v2 exception: no such instance.
    NoSuchInstance,
    /// v2 exception: end of MIB view.
    EndOfMibView,
    /// A type SNMP does not define, kept as it came.
    Other(Tag, &'a [u8]),
}

impl<'a> Value<'a> {
    /// Decodes a value element.
    #[inline]
    pub fn parse(tlv: Tlv<'a>) -> Result<Value<'a>> {
        // Every SNMP type has a one-octet tag: one jump on that octet.
        let Some(byte) = tlv.tag.to_byte() else {
            return Ok(Value::Other(tlv.tag, tlv.value));
        };
        Ok(match byte {
            0x02 => Value::Integer(tlv.integer()?),
            0x04 => Value::OctetString(tlv.value),
            0x05 => {
                tlv.empty()?;
                Value::Null
            }
            0x06 => Value::ObjectId(Oid::parse(tlv.value, tlv.offset)?),
            0x40 => match <[u8; 4]>::try_from(tlv.value) {
                Ok(a) => Value::IpAddress(a),
                Err(_) => return Err(Error::new(ErrorKind::BadIpAddress, tlv.offset)),
            },
            0x41 => Value::Counter32(tlv.unsigned32()?),
            0x42 => Value::Gauge32(tlv.unsigned32()?),
            0x43 => Value::TimeTicks(tlv.unsigned32()?),
            0x44 => Value::Opaque(tlv.value),
            0x46 => Value::Counter64(tlv.unsigned64()?),
            0x80 => {
                tlv.empty()?;
                Value::NoSuchObject
            }
            0x81 => {
                tlv.empty()?;
                Value::NoSuchInstance
            }
            0x82 => {
                tlv.empty()?;
                Value::EndOfMibView
            }
            _ => Value::Other(tlv.tag, tlv.value),
        })
    }

    /// The type name as net-snmp prints it (`INTEGER`, `STRING`, `Timeticks`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Integer(_) => "INTEGER",
            Value::OctetString(_) => "STRING",
            Value::Null => "NULL",
            Value::ObjectId(_) => "OID",
            Value::IpAddress(_) => "IpAddress",
            Value::Counter32(_) => "Counter32",
            Value::Gauge32(_) => "Gauge32",
            Value::TimeTicks(_) => "Timeticks",
            Value::Opaque(_) => "Opaque",
            Value::Counter64(_) => "Counter64",
            Value::NoSuchObject => "noSuchObject",
            Value::NoSuchInstance => "noSuchInstance",
            Value::EndOfMibView => "endOfMibView",
            Value::Other(..) => "Other",
        }
    }

    /// The value as an unsigned number, for the numeric types.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::Integer(v) if v >= 0 => Some(v as u64),
            Value::Counter32(v) | Value::Gauge32(v) | Value::TimeTicks(v) => Some(v as u64),
            Value::Counter64(v) => Some(v),
            _ => None,
        }
    }
}

/// Writes octets as text when they are printable UTF-8, else as hex (`00 1a ff`).
pub struct Octets<'a>(pub &'a [u8]);

impl Octets<'_> {
    /// True when the octets are text a person can read.
    pub fn is_text(&self) -> bool {
        match core::str::from_utf8(self.0) {
            Ok(s) => s
                .chars()
                .all(|c| !c.is_control() || c == '\n' || c == '\r' || c == '\t'),
            Err(_) => false,
        }
    }
}

impl fmt::Display for Octets<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_text() {
            // Checked by is_text just above.
            f.write_str(core::str::from_utf8(self.0).unwrap_or_default())
        } else {
            for (i, b) in self.0.iter().enumerate() {
                if i > 0 {
                    f.write_str(" ")?;
                }
                write!(f, "{b:02x}")?;
            }
            Ok(())
        }
    }
}

impl fmt::Display for Value<'_> {
    /// net-snmp's `TYPE: value` form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Integer(v) => write!(f, "INTEGER: {v}"),
            Value::OctetString(s) => {
                let o = Octets(s);
                if o.is_text() {
                    write!(
                        f,
                        "STRING: {:?}",
                        core::str::from_utf8(s).unwrap_or_default()
                    )
                } else {
                    write!(f, "Hex-STRING: {o}")
                }
            }
            Value::Null => f.write_str("NULL"),
            Value::ObjectId(o) => write!(f, "OID: {o}"),
            Value::IpAddress([a, b, c, d]) => write!(f, "IpAddress: {a}.{b}.{c}.{d}"),
            Value::Counter32(v) => write!(f, "Counter32: {v}"),
            Value::Gauge32(v) => write!(f, "Gauge32: {v}"),
            Value::TimeTicks(v) => write!(f, "Timeticks: ({v}) {}", Ticks(*v)),
            Value::Opaque(s) => write!(f, "Opaque: {}", Octets(s)),
            Value::Counter64(v) => write!(f, "Counter64: {v}"),
            Value::NoSuchObject => {
                f.write_str("No Such Object available on this agent at this OID")
            }
            Value::NoSuchInstance => f.write_str("No Such Instance currently exists at this OID"),
            Value::EndOfMibView => f.write_str(
                "No more variables left in this MIB View (It is past the end of the MIB tree)",
            ),
            Value::Other(tag, s) => write!(
                f,
                "Other(tag {:#04x}/{}): {}",
                tag.form,
                tag.number,
                Octets(s)
            ),
        }
    }
}

/// TimeTicks as net-snmp prints them: `0:20:34:56.78`.
pub struct Ticks(pub u32);

impl fmt::Display for Ticks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.0;
        let (days, rest) = (t / 8_640_000, t % 8_640_000);
        let (h, rest) = (rest / 360_000, rest % 360_000);
        let (m, rest) = (rest / 6_000, rest % 6_000);
        let (s, cs) = (rest / 100, rest % 100);
        write!(f, "{days}:{h}:{m:02}:{s:02}.{cs:02}")
    }
}

/// One variable binding: an object instance and its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VarBind<'a> {
    /// The object instance.
    pub name: Oid<'a>,
    /// Its value.
    pub value: Value<'a>,
}

impl<'a> VarBind<'a> {
    /// Decodes one `SEQUENCE { name, value }`.
    #[inline]
    pub fn parse(tlv: Tlv<'a>) -> Result<VarBind<'a>> {
        let tlv = tlv.expect(ber::SEQUENCE)?;
        let mut r = tlv.reader();
        let name_tlv = r.expect(ber::OBJECT_IDENTIFIER)?;
        let name = Oid::parse(name_tlv.value, name_tlv.offset)?;
        let value = Value::parse(r.read()?)?;
        r.finish()?;
        Ok(VarBind { name, value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ber::Reader;

    fn value(bytes: &[u8]) -> Result<Value<'_>> {
        Value::parse(Reader::new(bytes).read()?)
    }

    #[test]
    fn every_snmp_type() {
        assert_eq!(value(&[0x02, 0x01, 0x21]), Ok(Value::Integer(33)));
        assert_eq!(
            value(&[0x04, 0x02, b'o', b'k']),
            Ok(Value::OctetString(b"ok"))
        );
        assert_eq!(value(&[0x05, 0x00]), Ok(Value::Null));
        assert_eq!(
            value(&[0x40, 0x04, 127, 0, 0, 1]),
            Ok(Value::IpAddress([127, 0, 0, 1]))
        );
        assert_eq!(value(&[0x41, 0x01, 0x05]), Ok(Value::Counter32(5)));
        assert_eq!(value(&[0x42, 0x01, 0x01]), Ok(Value::Gauge32(1)));
        assert_eq!(
            value(&[0x43, 0x03, 0x00, 0xba, 0x9c]),
            Ok(Value::TimeTicks(47772))
        );
        assert_eq!(value(&[0x44, 0x01, 0xaa]), Ok(Value::Opaque(&[0xaa])));
        assert_eq!(value(&[0x46, 0x01, 0x07]), Ok(Value::Counter64(7)));
        assert_eq!(value(&[0x80, 0x00]), Ok(Value::NoSuchObject));
        assert_eq!(value(&[0x81, 0x00]), Ok(Value::NoSuchInstance));
        assert_eq!(value(&[0x82, 0x00]), Ok(Value::EndOfMibView));
        match value(&[0x06, 0x03, 0x2b, 0x06, 0x01]) {
            Ok(Value::ObjectId(o)) => assert_eq!(o.to_string(), "1.3.6.1"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            value(&[0x47, 0x01, 0x01]),
            Ok(Value::Other(Tag::from_byte(0x47), &[1]))
        );
    }

    #[test]
    fn malformed_values() {
        assert_eq!(
            value(&[0x05, 0x01, 0x00]).unwrap_err().kind,
            ErrorKind::NullNotEmpty
        );
        assert_eq!(
            value(&[0x40, 0x03, 1, 2, 3]).unwrap_err().kind,
            ErrorKind::BadIpAddress
        );
        assert_eq!(
            value(&[0x02, 0x00]).unwrap_err().kind,
            ErrorKind::IntegerEmpty
        );
        assert_eq!(
            value(&[0x80, 0x01, 0x00]).unwrap_err().kind,
            ErrorKind::NullNotEmpty
        );
    }

    #[test]
    fn net_snmp_style_display() {
        assert_eq!(
            Value::TimeTicks(12345678).to_string(),
            "Timeticks: (12345678) 1:10:17:36.78"
        );
        assert_eq!(Value::OctetString(b"UPS").to_string(), "STRING: \"UPS\"");
        assert_eq!(Value::OctetString(&[0, 1]).to_string(), "Hex-STRING: 00 01");
    }
}
