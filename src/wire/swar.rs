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
    } else if len >= 4 {
        // Two four-byte loads that overlap in the middle: the whole slice, then shifted.
        let head = u32::from_le_bytes(s[..4].try_into().expect("4 bytes")) as u64;
        let tail = u32::from_le_bytes(s[len - 4..].try_into().expect("4 bytes")) as u64;
        (head | tail << (8 * (len - 4))) >> (8 * pos)
    } else {
        s[pos..]
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | b as u64)
    }
}

/// The first and the last eight bytes (zero when the whole is eight or fewer) of
/// `head` followed by the low `tail_len` bytes of `tail` (1 to 7), as `window` would read
/// them from the joined bytes, but computed in registers: reading back bytes just
/// written in pieces would wait for the stores (a store-forwarding stall).
#[inline(always)]
pub(crate) fn joined_words(head: &[u8], tail: u64, tail_len: usize) -> (u64, u64) {
    let n = head.len();
    debug_assert!((1..8).contains(&tail_len));
    let first = if n >= 8 {
        window(head, 0)
    } else if n > 0 {
        window(head, 0) | tail << (8 * n)
    } else {
        tail
    };
    let last = if n + tail_len <= 8 {
        0
    } else {
        // The last word holds the final `8 - tail_len` bytes of `head`, then the tail.
        let from_head = 8 - tail_len;
        window(head, n - from_head) | tail << (8 * from_head)
    };
    (first, last)
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
        assert_eq!(window(&s[..5], 0), 0x05_0403_0201);
        assert_eq!(window(&s[..7], 2), 0x07_0605_0403);
    }

    #[test]
    fn joined_words_read_as_the_joined_bytes() {
        let bytes: Vec<u8> = (1..=24).collect();
        for n in 0..=16 {
            for tail_len in 1..8 {
                let joined = &bytes[..n + tail_len];
                let tail = window(&joined[n..], 0);
                let first = window(joined, 0);
                let len = joined.len();
                let last = if len > 8 { window(joined, len - 8) } else { 0 };
                assert_eq!(
                    joined_words(&joined[..n], tail, tail_len),
                    (first, last),
                    "{n} + {tail_len} bytes"
                );
            }
        }
    }
}
