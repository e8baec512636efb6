//! A global allocator that counts allocations, for the tests that prove the hot path
//! makes none (each test binary that includes this module gets its own count).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct Counting;

/// Allocations and reallocations since the process started.
pub static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Allocations and reallocations made on this thread.
    static HERE: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Allocations and reallocations made on the calling thread so far: what a test that
/// runs its hot path on its own thread counts, whatever libtest's other threads (the
/// other tests, the harness printing their results) allocate meanwhile.
#[allow(dead_code)] // not every allocation test counts its own thread alone
pub fn allocations_here() -> usize {
    HERE.with(|c| c.get())
}

fn count() {
    ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
    // Not during the thread's teardown, when its locals are gone.
    let _ = HERE.try_with(|c| c.set(c.get() + 1));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Every frame of every capture in captures/ (v1 traps, v2c traps and informs,
/// requests, malformed packets), copied out of the files first.
#[allow(dead_code)] // not every allocation test reads the corpus
pub fn corpus_frames() -> Vec<(trapgate::wire::frame::LinkType, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
    let mut frames = Vec::new();
    for entry in std::fs::read_dir(dir).expect("captures/") {
        let path = entry.expect("entry").path();
        if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("pcap" | "pcapng")
        ) {
            trapgate::capture::read_capture(&path, |f| frames.push((f.link, f.data.to_vec())))
                .expect("capture");
        }
    }
    frames
}
