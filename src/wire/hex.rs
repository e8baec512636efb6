//! Bytes as hexadecimal text and back: engine IDs as net-snmp writes them, journal
//! fields, test vectors.

use core::fmt::Write;

/// `bytes` in lower-case hex, two digits each.
pub fn encode(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(2 * bytes.len());
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Hex text back to bytes (either case); None for an odd length or a non-hex digit.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len() / 2)
        .map(|i| u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        assert_eq!(encode(&[0x80, 0x00, 0x1f, 0xff]), "80001fff");
        assert_eq!(decode("80001FFF"), Some(vec![0x80, 0x00, 0x1f, 0xff]));
        assert_eq!(decode(""), Some(vec![]));
        assert_eq!(decode("abc"), None, "odd");
        assert_eq!(decode("zz"), None, "not hex");
        assert_eq!(decode("é1"), None, "not ASCII");
    }
}
