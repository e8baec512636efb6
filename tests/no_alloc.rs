//! The hot path allocates nothing per packet: after a warm-up, decoding, classifying and
//! deciding on a corpus of v1 and v2c traps (and malformed packets) with the arena reset
//! per batch makes no call to the global allocator. A counting allocator proves it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use bumpalo::Bump;
use trapgate::classify::{Classifier, Event};
use trapgate::config::Site;
use trapgate::pipeline::{Outcome, Pipeline};
use trapgate::policy::Decider;
use trapgate::source::frame::udp_datagram;
use trapgate::source::replay::read_capture;
use trapgate::time::Timestamp;

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
fn decode_classify_and_decide_allocate_nothing_per_packet() {
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
    // The policy too: the seed's site; the traps of its UPS (192.168.61.250) go in.
    let mut decider = Decider::new(Site::default_site());
    let ups = decider.site().upses[0].address;
    let mut decoded = 0u64;
    let mut decided = 0u64;
    let mut now = 0u64;
    let mut run = |arena: &mut Bump, pipeline: &mut Pipeline, decider: &mut Decider| {
        // One batch = the whole corpus; the arena is reset between batches.
        arena.reset();
        for (link, data) in &frames {
            if let Ok(d) = udp_datagram(*link, data)
                && let Outcome::Message(d, m, Some(c)) = pipeline.process_datagram(d, arena)
            {
                decoded += 1;
                // The UPS's own traps during an outage, a second apart, timers firing: after
                // the first pass everything is decided and the repeats move nothing. (A
                // decision — an order, an alert, a refusal — allocates its sentence: a few
                // per outage, not per packet. Power coming back starts a new story.)
                let repeat = !matches!(
                    c.event,
                    Event::CommunicationLost
                        | Event::CommunicationRestored
                        | Event::PowerRestored
                        | Event::BatteryRestored
                );
                if d.src == ups && m.community == b"public" && repeat {
                    now += 1_000_000_000;
                    while let Some(due) = decider.poll_timeout().filter(|t| t.0 <= now) {
                        decider.handle_timeout(due);
                    }
                    decider.handle_notification(Timestamp(now), d.src, m.community, c.event, "");
                    decided += 1;
                }
            }
        }
        while decider.poll_decision().is_some() {}
    };
    // Warm-up: the arena reaches its working size, and the UPS's outage is under way
    // (its first decisions, with their sentences, are made once, not per packet).
    run(&mut arena, &mut pipeline, &mut decider);
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    for _ in 0..100 {
        run(&mut arena, &mut pipeline, &mut decider);
    }
    let after = ALLOCATIONS.load(Ordering::SeqCst);
    assert!(decoded > 100 * 40, "{decoded} notifications classified");
    assert!(decided > 100 * 15, "{decided} notifications decided on");
    assert_eq!(
        after - before,
        0,
        "allocations during {} packets",
        100 * frames.len()
    );
}
