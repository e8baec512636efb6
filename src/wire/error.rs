//! Decoding errors of the wire layer.
//!
//! Every failure to decode an SNMP message is one `Error`: a reason (`ErrorKind`) and the
//! byte offset in the message where the decoder stopped. Errors are `Copy` and carry no
//! text, so the hot path counts them per reason without formatting anything; `Display`
//! turns one into a sentence for a site engineer.

use core::fmt;

/// Why a message could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A tag, length or value runs past the end of the packet or of its enclosing element.
    Truncated,
    /// The indefinite length form (0x80), which SNMP never uses.
    IndefiniteLength,
    /// A length field of more than four octets.
    LengthTooLong,
    /// A high-tag-number identifier that does not fit 32 bits.
    TagTooLong,
    /// An element with another tag than the grammar allows at this place.
    WrongTag,
    /// An INTEGER (or Counter, Gauge, TimeTicks) with no content octets.
    IntegerEmpty,
    /// An INTEGER too large for its type (64 bits; 32 bits for Counter32, Gauge32, TimeTicks).
    IntegerTooLarge,
    /// An OBJECT IDENTIFIER with no content octets.
    OidEmpty,
    /// A sub-identifier that starts with 0x80 (non-minimal encoding).
    OidPadding,
    /// The last sub-identifier of an OBJECT IDENTIFIER is cut off.
    OidTruncated,
    /// A sub-identifier larger than 2^32 - 1.
    OidArcTooLarge,
    /// More than 128 sub-identifiers.
    OidTooManyArcs,
    /// A NULL or an exception value (noSuchObject, ...) with content.
    NullNotEmpty,
    /// An IpAddress that is not four octets.
    BadIpAddress,
    /// Bytes left after the element that should have ended the message.
    TrailingData,
    /// A version number other than 0 (v1), 1 (v2c) or 3 (v3).
    BadVersion,
    /// An SNMPv3 message: for the security model to open (`Message::parse` reads only
    /// v1 and v2c).
    UnsupportedV3,
    /// A PDU tag that no SNMP version defines.
    UnknownPdu,
    /// An SNMPv3 msgFlags that is not one octet.
    BadMsgFlags,
}

impl ErrorKind {
    /// Every kind, in the order of `index()`.
    pub const ALL: [ErrorKind; 19] = [
        ErrorKind::Truncated,
        ErrorKind::IndefiniteLength,
        ErrorKind::LengthTooLong,
        ErrorKind::TagTooLong,
        ErrorKind::WrongTag,
        ErrorKind::IntegerEmpty,
        ErrorKind::IntegerTooLarge,
        ErrorKind::OidEmpty,
        ErrorKind::OidPadding,
        ErrorKind::OidTruncated,
        ErrorKind::OidArcTooLarge,
        ErrorKind::OidTooManyArcs,
        ErrorKind::NullNotEmpty,
        ErrorKind::BadIpAddress,
        ErrorKind::TrailingData,
        ErrorKind::BadVersion,
        ErrorKind::UnsupportedV3,
        ErrorKind::UnknownPdu,
        ErrorKind::BadMsgFlags,
    ];

    /// A dense index for per-reason counters.
    pub fn index(self) -> usize {
        self as usize
    }

    /// A stable snake_case name, used in counters, metrics and JSON.
    pub fn reason(self) -> &'static str {
        match self {
            ErrorKind::Truncated => "truncated",
            ErrorKind::IndefiniteLength => "indefinite_length",
            ErrorKind::LengthTooLong => "length_too_long",
            ErrorKind::TagTooLong => "tag_too_long",
            ErrorKind::WrongTag => "wrong_tag",
            ErrorKind::IntegerEmpty => "integer_empty",
            ErrorKind::IntegerTooLarge => "integer_too_large",
            ErrorKind::OidEmpty => "oid_empty",
            ErrorKind::OidPadding => "oid_padding",
            ErrorKind::OidTruncated => "oid_truncated",
            ErrorKind::OidArcTooLarge => "oid_arc_too_large",
            ErrorKind::OidTooManyArcs => "oid_too_many_arcs",
            ErrorKind::NullNotEmpty => "null_not_empty",
            ErrorKind::BadIpAddress => "bad_ip_address",
            ErrorKind::TrailingData => "trailing_data",
            ErrorKind::BadVersion => "bad_version",
            ErrorKind::UnsupportedV3 => "snmpv3_unsupported",
            ErrorKind::UnknownPdu => "unknown_pdu",
            ErrorKind::BadMsgFlags => "bad_msg_flags",
        }
    }

    fn sentence(self) -> &'static str {
        match self {
            ErrorKind::Truncated => "an element runs past the end of the packet or of its parent",
            ErrorKind::IndefiniteLength => "indefinite length (0x80), which SNMP does not allow",
            ErrorKind::LengthTooLong => "a length field longer than four octets",
            ErrorKind::TagTooLong => "a tag number that does not fit 32 bits",
            ErrorKind::WrongTag => "an element of the wrong type for its place in the message",
            ErrorKind::IntegerEmpty => "an integer with no content octets",
            ErrorKind::IntegerTooLarge => "an integer too large for its type",
            ErrorKind::OidEmpty => "an empty object identifier",
            ErrorKind::OidPadding => {
                "an object identifier sub-identifier padded with 0x80 (non-minimal)"
            }
            ErrorKind::OidTruncated => "an object identifier whose last sub-identifier is cut off",
            ErrorKind::OidArcTooLarge => "an object identifier sub-identifier above 4294967295",
            ErrorKind::OidTooManyArcs => "an object identifier of more than 128 sub-identifiers",
            ErrorKind::NullNotEmpty => "a NULL or exception value with content",
            ErrorKind::BadIpAddress => "an IpAddress that is not four octets",
            ErrorKind::TrailingData => "bytes after the end of the SNMP message",
            ErrorKind::BadVersion => "an SNMP version other than 1, 2c or 3",
            ErrorKind::UnsupportedV3 => {
                "an SNMPv3 message (opened by the security model, with the site's users)"
            }
            ErrorKind::UnknownPdu => "a PDU type that no SNMP version defines",
            ErrorKind::BadMsgFlags => "an SNMPv3 msgFlags that is not one octet",
        }
    }
}

/// A decoding failure: what went wrong and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Error {
    /// The reason.
    pub kind: ErrorKind,
    /// Byte offset from the start of the message where decoding stopped.
    pub offset: usize,
}

impl Error {
    /// An error of `kind` at `offset`.
    pub const fn new(kind: ErrorKind, offset: usize) -> Self {
        Error { kind, offset }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "malformed SNMP message at byte {}: {}",
            self.offset,
            self.kind.sentence()
        )
    }
}

impl std::error::Error for Error {}

/// Result of a wire-layer decode.
pub type Result<T> = core::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_are_dense_and_reasons_unique() {
        for (i, k) in ErrorKind::ALL.iter().enumerate() {
            assert_eq!(k.index(), i);
        }
        let mut reasons: Vec<_> = ErrorKind::ALL.iter().map(|k| k.reason()).collect();
        reasons.sort();
        reasons.dedup();
        assert_eq!(reasons.len(), ErrorKind::ALL.len());
    }

    #[test]
    fn display_names_offset_and_reason() {
        let e = Error::new(ErrorKind::OidPadding, 31);
        assert_eq!(
            e.to_string(),
            "malformed SNMP message at byte 31: an object identifier sub-identifier padded with 0x80 (non-minimal)"
        );
    }
}
