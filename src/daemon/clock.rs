//! The live gateway's clock. Every timer (grace, confirm-by-poll, settle, re-sends, polls,
//! boot times) runs on a monotonic clock, so a step of the wall clock (NTP after a cold
//! start, an operator's `date -s`) neither fires timers early nor postpones them; the
//! wall clock only labels what is printed.
//!
//! The timeline is the monotonic clock anchored at the wall clock's reading at start, so
//! it reads like the epoch and equals the wall clock until the wall clock steps. Kernel
//! receive timestamps (SO_TIMESTAMPNS) are wall-clock readings; a datagram's arrival on
//! the timeline is "now, minus how long ago the kernel stamped it", that age clamped, so
//! a step between the stamp and its reading cannot move an arrival far.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::time::{Timestamp, ns};

/// The wall clock now, from the OS: only sources read it.
pub fn now() -> Timestamp {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp(d.as_nanos() as u64)
}

/// The monotonic clock as the kernel last ticked it (CLOCK_MONOTONIC_COARSE, ns): a
/// read of the vDSO's data page, no timer read, at the tick's resolution (1–10 ms).
/// The receive workers' security-model clock: SNMPv3's time window is 150 s, its
/// Reports' engine time whole seconds.
#[allow(unsafe_code)]
pub fn coarse_monotonic() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec to write. A kernel without the coarse clock (none
    // since 2.6.32) is read the fine way: the same clock, the same origin.
    unsafe {
        if libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut t) != 0 {
            libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t);
        }
    }
    (t.tv_sec as u64)
        .saturating_mul(ns::SECOND)
        .saturating_add(t.tv_nsec as u64)
}

/// Where the clock reads the time: the OS, or a test's.
pub trait TimeSource: Send + Sync {
    /// The wall clock, nanoseconds since the epoch.
    fn wall(&self) -> u64;
    /// A monotonic clock, nanoseconds from any origin.
    fn monotonic(&self) -> u64;
}

/// The OS's clocks: CLOCK_REALTIME and CLOCK_MONOTONIC (`std::time::Instant`).
#[derive(Debug)]
pub struct OsTime {
    origin: Instant,
}

impl Default for OsTime {
    fn default() -> Self {
        OsTime {
            origin: Instant::now(),
        }
    }
}

impl OsTime {
    /// The OS's clocks, the monotonic one counted from `origin`.
    pub fn since(origin: Instant) -> OsTime {
        OsTime { origin }
    }
}

impl TimeSource for OsTime {
    fn wall(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    }

    fn monotonic(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }
}

/// The oldest a kernel timestamp is taken to be: beyond this, a wall-clock step between
/// the stamp and its reading is the likelier story.
const MAX_AGE: u64 = 60 * ns::SECOND;

/// The policy's clock: monotonic, anchored at the wall clock at start, optionally sped
/// up (the demo runs the seed's minutes in seconds).
#[derive(Clone)]
pub struct Clock {
    source: Arc<dyn TimeSource>,
    wall0: u64,
    mono0: u64,
    speed: f64,
}

impl core::fmt::Debug for Clock {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Clock")
            .field("wall0", &self.wall0)
            .field("speed", &self.speed)
            .finish()
    }
}

impl Clock {
    /// A clock reading `source`, `speed` times faster than real time (1: real time).
    pub fn new(source: Arc<dyn TimeSource>, speed: f64) -> Clock {
        Clock {
            wall0: source.wall(),
            mono0: source.monotonic(),
            source,
            speed: if speed > 0.0 { speed } else { 1.0 },
        }
    }

    /// The source's monotonic reading (its own origin, real time) when the timeline
    /// read `t`: where a record's time falls on the clock of whoever gave the source.
    pub fn monotonic_at(&self, t: Timestamp) -> u64 {
        let on_timeline = t.0.saturating_sub(self.wall0);
        self.mono0
            .saturating_add((on_timeline as f64 / self.speed) as u64)
    }

    /// The OS's clock at real time.
    pub fn os() -> Clock {
        Clock::new(Arc::new(OsTime::default()), 1.0)
    }

    fn scaled(&self, real: u64) -> u64 {
        if self.speed == 1.0 {
            real
        } else {
            (real as f64 * self.speed) as u64
        }
    }

    /// Now, on the timeline.
    pub fn now(&self) -> Timestamp {
        let elapsed = self.source.monotonic().saturating_sub(self.mono0);
        Timestamp(self.wall0.saturating_add(self.scaled(elapsed)))
    }

    /// When a datagram the kernel stamped at wall-clock `kernel` arrived, on the
    /// timeline (`kernel` 0: now).
    pub fn arrival(&self, kernel: u64) -> Timestamp {
        let now = self.now();
        if kernel == 0 {
            return now;
        }
        let age = self.source.wall().saturating_sub(kernel).min(MAX_AGE);
        Timestamp(now.0.saturating_sub(self.scaled(age)))
    }

    /// The real time until timeline time `due`.
    pub fn wait(&self, due: Timestamp) -> Duration {
        let d = due.ns_since(self.now()) as f64 / self.speed;
        Duration::from_nanos(d as u64)
    }

    /// How far the wall clock is from the timeline now (what it stepped since start), to
    /// label records with the wall clock's time; 0 for a sped-up clock.
    pub fn label_offset(&self) -> i64 {
        if self.speed != 1.0 {
            return 0;
        }
        self.source.wall() as i64 - self.now().0 as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_coarse_clock_runs_with_the_monotonic_one_and_never_back() {
        // Each coarse read between two fine ones: a pause of the test's thread anywhere
        // widens the bounds with it, so none can fail the check.
        let before0 = Instant::now();
        let coarse0 = coarse_monotonic();
        let after0 = Instant::now();
        let mut last = coarse0;
        while before0.elapsed() < Duration::from_millis(60) {
            let t = coarse_monotonic();
            assert!(t >= last, "the coarse clock went back: {last} then {t}");
            last = t;
        }
        let before1 = Instant::now();
        let coarse1 = coarse_monotonic();
        let after1 = Instant::now();
        assert!(coarse1 >= last, "the coarse clock went back");
        // The coarse clock is the fine one as of its last tick (10 ms at HZ=100, the
        // coarsest): it moved at least the fine clock's least span less a tick, at most
        // its widest span plus a tick.
        let moved = coarse1 - coarse0;
        let least = before1.duration_since(after0).as_nanos() as u64;
        let most = after1.duration_since(before0).as_nanos() as u64;
        let tick = 20 * ns::MILLI;
        assert!(
            moved + tick >= least && moved <= most + tick,
            "the coarse clock moved {moved} ns while the fine one moved {least}..{most} ns"
        );
    }
    use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

    /// A test's clocks: the monotonic clock moves only when told; the wall clock moves
    /// with it, plus whatever step it is given.
    #[derive(Default)]
    struct Stepped {
        mono: AtomicU64,
        step: AtomicI64,
    }

    impl TimeSource for Stepped {
        fn wall(&self) -> u64 {
            (1_700_000_000 * ns::SECOND + self.mono.load(Ordering::SeqCst))
                .saturating_add_signed(self.step.load(Ordering::SeqCst))
        }
        fn monotonic(&self) -> u64 {
            self.mono.load(Ordering::SeqCst)
        }
    }

    #[test]
    fn a_wall_clock_step_moves_no_timer() {
        let t = Arc::new(Stepped::default());
        let clock = Clock::new(t.clone(), 1.0);
        let start = clock.now();
        let due = start.plus_secs(120);
        t.mono.store(10 * ns::SECOND, Ordering::SeqCst);
        assert_eq!(clock.wait(due), Duration::from_secs(110));
        // Forward an hour: the timer is still 110 s away, and a record made now is
        // labelled with the wall clock's time.
        t.step.store(3600 * ns::SECOND as i64, Ordering::SeqCst);
        assert_eq!(clock.now(), start.plus_secs(10));
        assert_eq!(clock.wait(due), Duration::from_secs(110));
        assert_eq!(clock.label_offset(), 3600 * ns::SECOND as i64);
        // A datagram stamped by the kernel 2 ms ago, by the stepped wall clock.
        let stamped = t.wall() - 2 * ns::MILLI;
        assert_eq!(
            clock.arrival(stamped),
            start.plus_secs(10).shifted(-2 * ns::MILLI as i64)
        );
        // Backward two hours: nothing postponed; a stamp from before the step is old, but
        // never older than MAX_AGE.
        t.step.store(-3600 * ns::SECOND as i64, Ordering::SeqCst);
        assert_eq!(clock.wait(due), Duration::from_secs(110));
        assert_eq!(
            clock.arrival(stamped),
            clock.now(),
            "a stamp from the future is now"
        );
        t.step.store(0, Ordering::SeqCst);
        let stamped_before = t.wall();
        t.step.store(7200 * ns::SECOND as i64, Ordering::SeqCst);
        assert_eq!(
            clock.arrival(stamped_before),
            Timestamp(clock.now().0 - MAX_AGE)
        );
        t.mono.store(120 * ns::SECOND, Ordering::SeqCst);
        assert_eq!(
            clock.wait(due),
            Duration::ZERO,
            "due when 120 s have passed"
        );
    }

    #[test]
    fn a_sped_up_clock_runs_its_timeline_faster() {
        let t = Arc::new(Stepped::default());
        let clock = Clock::new(t.clone(), 60.0);
        let start = clock.now();
        t.mono.store(2 * ns::SECOND, Ordering::SeqCst);
        assert_eq!(clock.now(), start.plus_secs(120));
        assert_eq!(clock.wait(start.plus_secs(180)), Duration::from_secs(1));
        assert_eq!(clock.label_offset(), 0);
    }
}
