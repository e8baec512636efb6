//! Fuzzes the link / IP / UDP header parsing and the pipeline behind it, for every
//! link type a capture can name: no input may panic, and every frame is counted.
#![no_main]

use std::cell::RefCell;

use bumpalo::Bump;
use libfuzzer_sys::fuzz_target;
use trapgate::classify::Classifier;
use trapgate::engine::pipeline::Pipeline;
use trapgate::time::Timestamp;
use trapgate::wire::frame::LinkType;

thread_local! {
    // Built once: compiling the rule tables per input would be most of the run time.
    static PIPELINE: RefCell<Pipeline> = RefCell::new(Pipeline::new(Classifier::builtin(), &[]));
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
});
