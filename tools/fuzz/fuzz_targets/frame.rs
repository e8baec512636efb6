//! Fuzzes the link / IP / UDP header parsing and the pipeline behind it, for every
//! link type a capture can name: no input may panic, and every frame is counted. The
//! same frame as TCP goes to the replay's follower of NUT and apcupsd clients: the
//! bytes it hands on are new bytes of that segment, never more.
#![no_main]

use std::cell::RefCell;

use bumpalo::Bump;
use libfuzzer_sys::fuzz_target;
use trapgate::classify::Classifier;
use trapgate::engine::pipeline::Pipeline;
use trapgate::time::Timestamp;
use trapgate::capture::tcp::{Clients, Step};
use trapgate::wire::frame::{LinkType, tcp_segment};

thread_local! {
    // Built once: compiling the rule tables per input would be most of the run time.
    static PIPELINE: RefCell<Pipeline> = RefCell::new(Pipeline::new(Classifier::builtin(), &[]));
    // Kept across inputs (a connection's segments come in several), made again now and
    // then so that random 4-tuples do not pile up.
    static CLIENTS: RefCell<(u32, Clients)> = RefCell::new((0, Clients::new(3493, 3551)));
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, frame)) = data.split_first() else { return };
    let link = [0u32, 1, 12, 101, 108, 113, 228, 229, 276][selector as usize % 9];
    let arena = Bump::new();
    PIPELINE.with_borrow_mut(|p| {
        let before = p.counters().frames;
        let _ = p.process_frame(LinkType(link), frame, &arena, Timestamp(0));
        assert_eq!(p.counters().frames, before + 1);
    });
    if let Ok(seg) = tcp_segment(LinkType(link), frame) {
        CLIENTS.with_borrow_mut(|(n, c)| {
            *n += 1;
            if *n % 10_000 == 0 {
                *c = Clients::new(3493, 3551);
            }
            let mut steps = Vec::new();
            c.segment(&seg, &mut steps);
            for step in steps {
                if let Step::Bytes(_, _, b) = step {
                    assert!(!b.is_empty() && b.len() <= seg.payload.len());
                }
            }
        });
    }
});
