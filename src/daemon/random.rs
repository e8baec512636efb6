//! Request ids drawn from the OS: the live gateway's source for the poller, the power
//! machine, forwarding's informs and the probe (the engine takes any `RequestIds`;
//! replays and tests count up from a seed).

use crate::engine::poller::RequestIds;

/// Request ids from the OS's CSPRNG (`getrandom`), one draw per request.
#[derive(Debug, Default)]
pub struct OsRandom;

impl RequestIds for OsRandom {
    fn next_id(&mut self) -> i32 {
        let mut b = [0u8; 4];
        // getrandom fails only where the OS has no random source at all; a poll id that
        // is then the time's low bits is still better than no poll.
        if getrandom::fill(&mut b).is_err() {
            b = (std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.subsec_nanos()))
            .to_le_bytes();
        }
        (u32::from_le_bytes(b) & 0x7fff_ffff).max(1) as i32
    }

    fn another(&self) -> Box<dyn RequestIds> {
        Box::new(OsRandom)
    }
}

/// A random 64-bit number (a pair channel's session: new at each start).
pub fn session() -> u64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        b = (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64))
        .to_le_bytes();
    }
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_drawn_at_random() {
        let mut ids = OsRandom;
        let drawn: Vec<i32> = (0..1000).map(|_| ids.next_id()).collect();
        assert!(drawn.iter().all(|&i| i > 0));
        let distinct: std::collections::HashSet<i32> = drawn.iter().copied().collect();
        assert!(distinct.len() > 990, "{} distinct of 1000", distinct.len());
        let steps = drawn
            .windows(2)
            .filter(|w| w[1].wrapping_sub(w[0]) == 1)
            .count();
        assert!(steps < 3, "{steps} ids follow their predecessor");
    }
}
