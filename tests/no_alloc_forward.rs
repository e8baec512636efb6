//! Forwarding allocates nothing per packet: after a warm-up, routing each notification
//! of the corpus to its `[[forward]]` targets, writing its forwarded form (what a
//! receive worker does) and each target's own (what the forward thread does: its
//! community, v1 kept or converted to v2c, an inform's new request id) into reused
//! buffers makes no call to the global allocator. A counting allocator proves it.

use std::sync::atomic::Ordering;

use bumpalo::Bump;
use trapgate::engine::config::Site;
use trapgate::wire::Message;
use trapgate::wire::frame::udp_datagram;

mod counting;
use counting::ALLOCATIONS;

#[test]
fn routing_and_writing_forwarded_notifications_allocate_nothing_per_packet() {
    let frames = counting::corpus_frames();
    let site = Site::parse(&format!(
        "{}\n[[forward]]\nto = \"127.0.0.21:162\"\n\n[[forward]]\nto = \"127.0.0.22:162\"\nmatch = [\".1.3.6.1.4.1.318*\"]\nversion = \"2c\"\ncommunity = \"nms\"\n\n[[forward]]\nto = \"[::1]:162\"\nmatch = [\"*\"]\nsources = \"any\"\n",
        trapgate::engine::config::DEFAULT_SITE
    ))
    .expect("the site");
    let forwarding = &site.forwarding;
    let (mut canonical, mut out) = (Vec::with_capacity(1 << 16), Vec::with_capacity(1 << 16));
    let mut arena = Bump::with_capacity(64 * 1024);
    let mut scratch = Bump::with_capacity(64 * 1024);
    let (mut routed, mut written) = (0u64, 0u64);
    let mut run = |arena: &mut Bump, scratch: &mut Bump| {
        arena.reset();
        scratch.reset();
        canonical.clear();
        out.clear();
        for (link, data) in &frames {
            let Ok(d) = udp_datagram(*link, data) else {
                continue;
            };
            let Ok(m) = Message::parse(d.payload, arena) else {
                continue;
            };
            let mask = forwarding.route(&m, d.src, true);
            if mask == 0 {
                continue;
            }
            routed += 1;
            let start = canonical.len();
            if !trapgate::engine::forward::canonical_from(d.payload, &m, d.src, &mut canonical) {
                continue;
            }
            let c = Message::parse(&canonical[start..], scratch).expect("its own encoding");
            for (i, t) in forwarding.targets().iter().enumerate() {
                if mask & (1 << i) != 0 {
                    trapgate::engine::forward::forwarded(&c, t, 12345, &mut out);
                    written += 1;
                }
            }
        }
    };
    for _ in 0..5 {
        run(&mut arena, &mut scratch);
    }
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    for _ in 0..50 {
        run(&mut arena, &mut scratch);
    }
    let after = ALLOCATIONS.load(Ordering::SeqCst);
    assert!(routed > 55 * 40, "{routed} notifications routed");
    assert!(written > routed, "{written} forms written");
    assert_eq!(
        after - before,
        0,
        "allocations while forwarding {routed} notifications"
    );
}
