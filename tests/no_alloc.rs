//! The hot path allocates nothing per packet: after a warm-up, decoding and classifying
//! a corpus of v1 and v2c traps (and malformed packets) with the arena reset per batch
//! makes no call to the global allocator. A counting allocator proves it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use bumpalo::Bump;
use trapgate::classify::Classifier;
use trapgate::pipeline::{Outcome, Pipeline};
use trapgate::source::frame::udp_datagram;
use trapgate::source::replay::read_capture;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn decode_and_classify_allocate_nothing_per_packet() {
    // The corpus: every frame of every capture in captures/ (v1 traps, v2c traps and
    // informs, requests, malformed packets), copied out of the files first.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
    let mut frames = Vec::new();
    for entry in std::fs::read_dir(dir).expect("captures/") {
        let path = entry.expect("entry").path();
        if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("pcap" | "pcapng")
        ) {
            read_capture(&path, |f| frames.push((f.link, f.data.to_vec()))).expect("capture");
        }
    }
    assert!(frames.len() > 60);
    let mut pipeline = Pipeline::new(Classifier::builtin(), &[]);
    let mut arena = Bump::with_capacity(64 * 1024);
    let mut decoded = 0u64;
    let mut run = |arena: &mut Bump, pipeline: &mut Pipeline| {
        // One batch = the whole corpus; the arena is reset between batches.
        arena.reset();
        for (link, data) in &frames {
            if let Ok(d) = udp_datagram(*link, data)
                && let Outcome::Message(_, _, Some(_)) = pipeline.process_datagram(d, arena)
            {
                decoded += 1;
            }
        }
    };
    run(&mut arena, &mut pipeline); // warm-up: the arena reaches its working size
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    for _ in 0..100 {
        run(&mut arena, &mut pipeline);
    }
    let after = ALLOCATIONS.load(Ordering::SeqCst);
    assert!(decoded > 100 * 40, "{decoded} notifications classified");
    assert_eq!(
        after - before,
        0,
        "allocations during {} packets",
        100 * frames.len()
    );
}
