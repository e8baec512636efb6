//! Time as the pipeline sees it: nanoseconds on a timeline that reads like the Unix
//! epoch, given by a source (the capture's timestamps in a replay; in the live gateway a
//! monotonic clock anchored at the wall clock's time at start, `daemon::clock`, so that
//! no step of the wall clock moves a timer). Nothing outside `daemon/` reads an OS clock.

use core::fmt;

/// Nanosecond arithmetic, in one place.
pub mod ns {
    /// A second.
    pub const SECOND: u64 = 1_000_000_000;
    /// A millisecond.
    pub const MILLI: u64 = 1_000_000;
    /// A microsecond.
    pub const MICRO: u64 = 1_000;
    /// A tick of SNMP's TimeTicks (a hundredth of a second).
    pub const TICK: u64 = 10_000_000;

    /// `s` whole seconds.
    pub const fn secs(s: u32) -> u64 {
        s as u64 * SECOND
    }

    /// A `timespec`'s seconds and nanoseconds (a kernel's stamp), as nanoseconds.
    pub const fn from_timespec(sec: u64, nsec: u64) -> u64 {
        sec.saturating_mul(SECOND).saturating_add(nsec)
    }

    /// A count of `1 / units_per_sec` units (a capture's timestamp at its interface's
    /// resolution), plus `offset_sec` whole seconds, as nanoseconds.
    pub const fn from_units(raw: u128, units_per_sec: u128, offset_sec: u64) -> u128 {
        let per = if units_per_sec == 0 { 1 } else { units_per_sec };
        raw * SECOND as u128 / per + offset_sec as u128 * SECOND as u128
    }

    /// `n` nanoseconds as seconds with their fraction (Prometheus, pacing).
    pub fn as_secs_f64(n: u64) -> f64 {
        n as f64 / SECOND as f64
    }
}

/// A point in time, nanoseconds since 1970-01-01T00:00:00Z (on the source's timeline).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// `s` whole seconds later (saturating).
    pub const fn plus_secs(self, s: u32) -> Timestamp {
        Timestamp(self.0.saturating_add(ns::secs(s)))
    }

    /// `n` nanoseconds later (saturating).
    pub const fn plus_ns(self, n: u64) -> Timestamp {
        Timestamp(self.0.saturating_add(n))
    }

    /// Nanoseconds from `earlier` to this one (0 if `earlier` is later).
    pub const fn ns_since(self, earlier: Timestamp) -> u64 {
        self.0.saturating_sub(earlier.0)
    }

    /// Moved by `offset` nanoseconds (a label's correction; saturating at both ends).
    pub const fn shifted(self, offset: i64) -> Timestamp {
        Timestamp(self.0.saturating_add_signed(offset))
    }

    /// Whole seconds from `earlier` (0 if it is later), saturating at `u32::MAX`.
    pub fn secs_since(self, earlier: Timestamp) -> u32 {
        u32::try_from(self.ns_since(earlier) / ns::SECOND).unwrap_or(u32::MAX)
    }

    /// SNMP TimeTicks (hundredths of a second) from `earlier`, wrapping as sysUpTime
    /// does after 497 days.
    pub fn ticks_since(self, earlier: Timestamp) -> u32 {
        (self.ns_since(earlier) / ns::TICK) as u32
    }

    /// Seconds (with fraction) since `origin`, as Wireshark's "seconds since beginning
    /// of capture" column.
    pub fn since(self, origin: Timestamp) -> f64 {
        (self.0 as i128 - origin.0 as i128) as f64 / 1e9
    }

    /// The ISO 8601 UTC form, to the microsecond: `2019-03-07T08:20:33.504849Z`.
    pub fn utc(self) -> Utc {
        Utc(self)
    }
}

/// Display adapter for `Timestamp::utc`.
pub struct Utc(Timestamp);

impl fmt::Display for Utc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0.0;
        let secs = ns / 1_000_000_000;
        let micros = (ns % 1_000_000_000) / 1_000;
        let days = (secs / 86_400) as i64;
        let rem = secs % 86_400;
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        )
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formatting() {
        assert_eq!(
            Timestamp(0).utc().to_string(),
            "1970-01-01T00:00:00.000000Z"
        );
        let t = Timestamp(1_551_946_833_504_849_000);
        assert_eq!(t.utc().to_string(), "2019-03-07T08:20:33.504849Z");
        assert_eq!(
            Timestamp(951_782_400_000_000_000).utc().to_string(),
            "2000-02-29T00:00:00.000000Z"
        );
        assert!((t.since(Timestamp(1_551_945_600_000_000_000)) - 1233.504849).abs() < 1e-9);
    }
}
