//! Byte tricks on machine words (SIMD within a register), shared by the OID checks and
//! the OID trie: loading up to eight bytes of a slice without a short copy, and finding
//! bytes equal to a value without a loop.

/// The top bit of every byte.
pub(crate) const HIGH: u64 = 0x8080_8080_8080_8080;
/// The low seven bits of every byte.
pub(crate) const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;

/// Eight bytes, little-endian.
#[inline(always)]
pub(crate) fn load8(b: &[u8]) -> u64 {
    u64::from_le_bytes(b.try_into().expect("8 bytes"))
}

/// The bytes of `s` from `pos` (at most eight), little-endian, zero-padded. Near the end
/// it loads the final eight bytes and shifts out those before `pos`: no memcpy call.
/// `pos` must be inside `s`.
#[inline(always)]
pub(crate) fn window(s: &[u8], pos: usize) -> u64 {
    let len = s.len();
    debug_assert!(pos < len, "window at {pos} of {len} bytes");
    if pos + 8 <= len {
        load8(&s[pos..pos + 8])
    } else if len >= 8 {
        load8(&s[len - 8..]) >> (8 * (8 - (len - pos)))
    } else {
        s[pos..]
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | b as u64)
    }
}

/// The top bit set in each byte of `x` that is zero, and only there (exact: no false
/// positives from borrows, unlike the classic `(x - 0x01..) & !x` test).
#[inline(always)]
pub(crate) fn zero_bytes(x: u64) -> u64 {
    !(((x & LOW7) + LOW7) | x) & HIGH
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_zero_bytes() {
        let s = [1u8, 2, 3, 4, 5, 6, 7, 8, 9, 10];
        assert_eq!(window(&s, 0), 0x0807_0605_0403_0201);
        assert_eq!(window(&s, 7), 0x0a_0908);
        assert_eq!(window(&s[..3], 1), 0x0302);
        assert_eq!(window(&s, 9), 0x0a);
        assert_eq!(zero_bytes(0x00ff_0100_8000_0001), 0x8000_0080_0080_8000);
    }
}
