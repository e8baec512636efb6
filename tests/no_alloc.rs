//! The hot path allocates nothing per packet: after a warm-up, decoding, classifying,
//! checking (the trust layer: who the source is, its community; refusals counted) and
//! deciding on a corpus of v1 and v2c traps (and malformed packets) with the arena reset
//! per batch makes no call to the global allocator. A counting allocator proves it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use bumpalo::Bump;
use trapgate::capture::read_capture;
use trapgate::classify::{Classifier, Event};
use trapgate::engine::config::Site;
use trapgate::engine::pipeline::{Outcome, Pipeline};
use trapgate::engine::policy::{Decider, Decision};
use trapgate::engine::trust::{Refusals, Trust};
use trapgate::time::Timestamp;
use trapgate::wire::frame::udp_datagram;

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
    let trust = Trust::new(decider.site());
    let mut refused = Refusals::default();
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
                let Some(who) = trust.who(d.src) else {
                    continue;
                };
                match trust.admit(who, &m, c.event) {
                    Ok(who) if repeat => {
                        now += 1_000_000_000;
                        while let Some(due) = decider.poll_timeout().filter(|t| t.0 <= now) {
                            decider.handle_timeout(due);
                        }
                        decider.handle_notification(Timestamp(now), who, c.event, "");
                        decided += 1;
                    }
                    Ok(_) => {}
                    Err(why) => refused.add(why),
                }
            }
        }
        // As the gateway does: a confirming poll goes out when decided.
        while let Some(d) = decider.poll_decision() {
            if let Decision::Poll { ups, .. } = d {
                decider.handle_poll_sent(Timestamp(now), ups);
            }
        }
    };
    // Warm-up: the arena reaches its working size, and the UPS's outage is under way
    // (its first decisions, with their sentences, are made once, not per packet).
    // Three passes: the low-battery trap's confirming poll goes out at the end of the
    // first, and its deadline shuts everything down in the second.
    for _ in 0..3 {
        run(&mut arena, &mut pipeline, &mut decider);
    }
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    for _ in 0..100 {
        run(&mut arena, &mut pipeline, &mut decider);
    }
    let after = ALLOCATIONS.load(Ordering::SeqCst);
    assert!(decoded > 103 * 40, "{decoded} notifications classified");
    assert!(decided > 103 * 15, "{decided} notifications decided on");
    assert!(refused.total() > 100, "{} refused", refused.total());
    assert_eq!(
        after - before,
        0,
        "allocations during {} packets",
        100 * frames.len()
    );
}
