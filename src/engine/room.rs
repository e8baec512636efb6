//! Room made ahead: buffers sized for a fan-out at start and their pages faulted in
//! then, so that the first outage neither grows them nor waits for the kernel to hand
//! out their pages while its orders wait.

use std::collections::VecDeque;
use std::mem::MaybeUninit;

/// Room for `per` items a recorder of a site of `recorders`, made at start so that the
/// first fan-out does not grow it (at most 20,000 recorders' worth: a larger site grows
/// the rest when it needs it).
pub fn fan_out_room(recorders: usize, per: usize) -> usize {
    recorders.min(20_000) * per + 64
}

/// Writes zeros over `v`'s spare capacity, so that its pages are the process's before
/// they are needed (nothing is constructed: the slots stay uninitialized to `Vec`).
/// The slots are hidden from the optimizer first: an allocation followed by zeros is
/// otherwise turned into `calloc`, which leaves fresh pages untouched.
pub fn touch<T>(v: &mut Vec<T>) {
    std::hint::black_box(v.spare_capacity_mut())
        .iter_mut()
        .for_each(|slot| *slot = MaybeUninit::zeroed());
}

/// An empty vector with room for `n`, its pages touched.
pub fn touched_vec<T>(n: usize) -> Vec<T> {
    let mut v = Vec::with_capacity(n);
    touch(&mut v);
    v
}

/// An empty queue with room for `n`, its pages touched (a `Vec`'s buffer becomes the
/// queue's as it is, its head at the start).
pub fn touched_deque<T>(n: usize) -> VecDeque<T> {
    VecDeque::from(touched_vec(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_touched_queue_keeps_its_room_and_starts_empty() {
        let mut q: VecDeque<u64> = touched_deque(1000);
        assert!(q.is_empty());
        assert!(q.capacity() >= 1000);
        let before = q.capacity();
        q.extend(0..1000);
        assert_eq!(q.capacity(), before, "filling it did not grow it");
        assert_eq!(q.iter().copied().sum::<u64>(), 999 * 1000 / 2);
    }

    /// Page faults of this thread so far.
    #[allow(unsafe_code)]
    fn faults() -> i64 {
        // SAFETY: getrusage writes one `rusage` it is given.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) };
        u.ru_minflt
    }

    /// Fills `q` with 320,000 items the size of the station's records; the page faults
    /// that took.
    fn fill(q: &mut VecDeque<(u64, [u64; 15])>) -> i64 {
        let before = faults();
        for i in 0..320_000u64 {
            q.push_back((i, [i; 15]));
        }
        std::hint::black_box(&q);
        faults() - before
    }

    #[test]
    fn a_touched_queue_is_filled_without_page_faults() {
        // 41 MB: above the largest threshold from which malloc maps memory afresh (32 MB),
        // so neither queue is given pages that another test has touched already.
        let mut touched = touched_deque(320_000);
        let mut untouched = VecDeque::with_capacity(320_000);
        let (t, u) = (fill(&mut touched), fill(&mut untouched));
        assert!(
            u > 1000,
            "an untouched queue faults its pages in as it fills ({u})"
        );
        assert!(
            t * 10 < u,
            "the touched queue's pages were the process's already: {t} faults against {u}"
        );
    }
}
